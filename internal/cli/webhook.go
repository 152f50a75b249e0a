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
	Listen      string   `default:":8088" help:"Address to listen on." placeholder:"HOST:PORT"`
	TLSCert     string   `name:"tls-cert" help:"Serve HTTPS with this certificate (PEM; with --tls-key)." placeholder:"FILE"`
	TLSKey      string   `name:"tls-key" help:"The certificate's private key (PEM)." placeholder:"FILE"`
	SecretEnv   string   `default:"TROUPE_WEBHOOK_SECRET" help:"Environment variable holding the shared secret (the forge's webhook secret or GitLab token); never on the command line." placeholder:"NAME"`
	Branch      []string `help:"Only these branches deploy (repeatable; globs like release/*). Default: every branch." placeholder:"GLOB"`
	Inventory   string   `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Plan        string   `default:"deploy-code" help:"The deploy plan; it must take an environment param."`
	CommitsStep string   `default:"servers/code" help:"The plan's puppet_code step, whose per-server commits /status shows." placeholder:"STEP-ID"`
	Queue       int      `default:"8" help:"Environments that may wait for a deploy; more pushes get 429."`
	MaxBody     int64    `default:"1048576" help:"Largest request body in bytes; larger gets 413." placeholder:"BYTES"`
	Concurrency int      `short:"c" default:"100" help:"Hosts worked on in parallel during a deploy."`
}

func (c *WebhookServeCmd) Run(g *Globals) error {
	invalid := func(err error) error { return &ExitError{Code: ExitInvalid, Err: err} }
	secretValue := os.Getenv(c.SecretEnv)
	if secretValue == "" {
		return invalid(fmt.Errorf("webhook: $%s is empty or not set; refusing to start without a secret", c.SecretEnv))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return invalid(errors.New("webhook: --tls-cert and --tls-key go together"))
	}
	if c.Inventory == "" {
		c.Inventory = defaultInventory()
	}
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
	logger := log.New(os.Stderr, "", log.LstdFlags)
	srv, err := webhook.New(webhook.Config{Secret: []byte(secretValue), Deploy: c.deploy(g), Branches: c.Branch,
		Queue: c.Queue, MaxBody: c.MaxBody, Logf: report.CleanLogf(logger.Printf)})
	if err != nil {
		return invalid(err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
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
		r, err := g.prepare(c.Plan, c.Inventory, map[string]string{"environment": env}, false)
		if err != nil {
			return nil, err
		}
		commits := &commitReporter{step: c.CommitsStep, env: env, servers: map[string]string{}}
		_, err = r.run(ctx, runner.Options{Concurrency: c.Concurrency}, func(*secret.Redactor, string) report.Reporter { return commits })
		if err != nil {
			// the message is masked, so it is rebuilt rather than wrapped
			return commits.result(), errors.New(r.red.String(err.Error()) + " (debug log: " + r.logPath + ")")
		}
		return commits.result(), nil
	}
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
