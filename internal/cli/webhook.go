package cli

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/runner"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/webhook"
)

// WebhookCmd groups the webhook subcommands.
type WebhookCmd struct {
	Serve WebhookServeCmd `cmd:"" help:"Deploy pushed branches: an HTTP endpoint for GitHub, GitLab, Gitea and Forgejo push events."`
}

// WebhookServeCmd runs the deploy plan for each pushed branch's environment.
type WebhookServeCmd struct {
	Listen         string        `default:"127.0.0.1:8088" help:"Address to listen on. Other than loopback, it takes --tls-cert and --tls-key (or --insecure-listen)." placeholder:"HOST:PORT"`
	TLSCert        string        `name:"tls-cert" help:"Serve HTTPS with this certificate (PEM; with --tls-key)." placeholder:"FILE"`
	TLSKey         string        `name:"tls-key" help:"The certificate's private key (PEM)." placeholder:"FILE"`
	InsecureListen bool          `help:"Serve plain HTTP on an address other than loopback: pushes, and GitLab's token (the shared secret), cross the network in clear."`
	SecretEnv      string        `default:"TROUPE_WEBHOOK_SECRET" help:"Environment variable holding the shared secret (the forge's webhook secret or GitLab token, at least 16 bytes); never on the command line." placeholder:"NAME"`
	LockWait       time.Duration `default:"30m" help:"How long a deploy refused because another run holds the hosts' locks keeps trying again (0: not at all)." placeholder:"DURATION"`
	Branch         []string      `help:"Only these branches deploy (repeatable; globs like release/*). Default: every branch." placeholder:"GLOB"`
	Inventory      string        `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Plan           string        `default:"deploy-code" help:"The deploy plan; it must take an environment param."`
	CommitsStep    string        `default:"servers/code" help:"The plan's puppet_code step, whose per-server commits /status shows." placeholder:"STEP-ID"`
	Queue          int           `default:"8" help:"Environments that may wait for a deploy; more pushes get 429."`
	MaxBody        int64         `default:"1048576" help:"Largest request body in bytes; larger gets 413." placeholder:"BYTES"`
	Concurrency    int           `short:"c" default:"100" help:"Hosts worked on in parallel during a deploy."`
}

func (c *WebhookServeCmd) Run(g *Globals) error {
	invalid := func(err error) error { return &ExitError{Code: ExitInvalid, Err: err} }
	secretValue := os.Getenv(c.SecretEnv)
	if secretValue == "" {
		return invalid(fmt.Errorf("webhook: $%s is empty or not set; refusing to start without a secret", c.SecretEnv))
	}
	if len(secretValue) < webhook.MinSecret {
		return invalid(fmt.Errorf("webhook: $%s is %d bytes; a secret must be at least %d (e.g. openssl rand -hex 24)", c.SecretEnv, len(secretValue), webhook.MinSecret))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return invalid(errors.New("webhook: --tls-cert and --tls-key go together"))
	}
	if c.LockWait < 0 {
		return invalid(errors.New("webhook: --lock-wait must not be negative"))
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	if c.TLSCert == "" {
		local, err := loopback(c.Listen)
		switch {
		case err != nil:
			return invalid(fmt.Errorf("webhook: --listen %q: %w", c.Listen, err))
		case !local && !c.InsecureListen:
			return invalid(fmt.Errorf("webhook: --listen %s is not a loopback address; refusing plain HTTP there: give --tls-cert and --tls-key, "+
				"or listen on 127.0.0.1 behind a TLS proxy, or accept the risk with --insecure-listen", c.Listen))
		case !local:
			logger.Printf("WARNING: --insecure-listen: plain HTTP on %s: anyone on the path can read the pushes, and GitLab's token, "+
				"which is the shared secret and so the signing key of GitHub, Gitea and Forgejo pushes too, crosses it in clear", c.Listen)
		}
	}
	if c.Inventory == "" {
		c.Inventory = defaultInventory()
	}
	// A service's working directory is not a choice anyone made: plans and
	// roles on disk come only from --content ($TROUPE_CONTENT).
	g.noCwdContent = true
	// Check the plan, the inventory and its secrets now, not at the first
	// push: a service that starts must be able to deploy.
	p, inv, _, err := g.loadAll(c.Plan, c.Inventory)
	if err != nil {
		return err
	}
	if p.Param("environment") == nil {
		return invalid(fmt.Errorf("webhook: plan %q has no environment param to deploy one environment with", c.Plan))
	}
	if err := resolveSecrets(inv, &secret.Redactor{}, false); err != nil {
		return invalid(fmt.Errorf("webhook: %w", err))
	}
	lockWait := c.LockWait
	if lockWait == 0 {
		lockWait = -1 // webhook.Config's "never"
	}
	srv, err := webhook.New(webhook.Config{Secret: []byte(secretValue), Deploy: c.deploy(g), Branches: c.Branch,
		Queue: c.Queue, MaxBody: c.MaxBody, LockWait: lockWait, Logf: report.CleanLogf(logger.Printf)})
	if err != nil {
		return invalid(err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && c.TLSCert == "" && !c.InsecureListen && !a.IP.IsLoopback() {
		ln.Close() // a name that resolved to another address
		return invalid(fmt.Errorf("webhook: --listen %s listens on %s, not loopback; give --tls-cert and --tls-key, or --insecure-listen", c.Listen, a))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	scheme, branches := "http", "every branch"
	if c.TLSCert != "" {
		scheme = "https"
	}
	if len(c.Branch) > 0 {
		branches = strings.Join(c.Branch, ", ")
	}
	logger.Printf("listening on %s://%s: plan %s, inventory %s, deploys %s", scheme, ln.Addr(), c.Plan, c.Inventory, branches)
	err = srv.Serve(ctx, ln, c.TLSCert, c.TLSKey)
	logger.Print("stopped")
	return err
}

// deploy runs the plan for one environment through the same preparation
// and runner as `troupe run`, reading the plan and inventory afresh so edits
// apply to the next push without a restart.
func (c *WebhookServeCmd) deploy(g *Globals) webhook.Deploy {
	return func(ctx context.Context, env string) (map[string]string, error) {
		g.contentNote = "" // announced for every deploy (deploys run one at a time)
		r, err := g.prepare(c.Plan, c.Inventory, map[string]string{"environment": env}, false)
		if err != nil {
			return nil, err
		}
		commits := &commitReporter{step: c.CommitsStep, env: env, servers: map[string]string{}}
		_, err = r.run(ctx, runner.Options{Concurrency: c.Concurrency}, func(*secret.Redactor, string) report.Reporter { return commits })
		if err != nil {
			// the message is masked, so it is rebuilt rather than wrapped; a
			// lock's holder stays findable, so the webhook waits for it
			derr := &deployError{msg: r.red.String(err.Error()) + " (debug log: " + r.logPath + ")"}
			if held := (*runner.LockHeldError)(nil); errors.As(err, &held) {
				derr.held = &runner.LockHeldError{Holder: r.red.String(held.Holder), Age: held.Age, Path: held.Path}
			}
			return commits.result(), derr
		}
		return commits.result(), nil
	}
}

// deployError is a deploy's masked error; it unwraps to the (masked)
// refusal of another run's lock when that is what stopped it.
type deployError struct {
	msg  string
	held *runner.LockHeldError
}

func (e *deployError) Error() string { return e.msg }

func (e *deployError) Unwrap() error {
	if e.held == nil {
		return nil
	}
	return e.held
}

// loopback says whether a HOST:PORT listens on loopback only: localhost or
// a loopback IP (an empty host is every interface).
func loopback(listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// commitReporter picks each server's deployed commit for env out of the
// puppet_code step's results, whose message reads "env@sha env2@sha2".
type commitReporter struct {
	step, env string
	mu        sync.Mutex
	servers   map[string]string
}

func (r *commitReporter) Emit(e report.Event) {
	if e.Kind != report.HostResult || e.Step != r.step || e.Status == report.Failed {
		return
	}
	for _, f := range strings.Fields(e.Reason) {
		if env, sha, ok := strings.Cut(f, "@"); ok && env == r.env {
			r.mu.Lock()
			r.servers[e.Host] = sha
			r.mu.Unlock()
		}
	}
}

func (r *commitReporter) Close() error { return nil }

func (r *commitReporter) result() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.servers) == 0 {
		return nil
	}
	return r.servers
}
