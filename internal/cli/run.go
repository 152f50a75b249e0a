package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/runner"
	"github.com/troupe/troupe/internal/safefile"
	"github.com/troupe/troupe/internal/secret"
)

// RunCmd runs a plan.
type RunCmd struct {
	Plan        string            `arg:"" help:"Plan name (plans/NAME.yaml) or path to a plan file."`
	Inventory   string            `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Param       map[string]string `short:"p" mapsep:"none" help:"Plan parameter NAME=VALUE (repeatable; one value each, never split). Secret params can come from $TROUPE_PARAM_NAME instead, keeping them out of argv." placeholder:"NAME=VALUE"`
	Limit       string            `short:"l" help:"Only hosts matching this selector (groups, names, globs, !exclusions)." placeholder:"SELECTOR"`
	Noop        bool              `short:"n" help:"Connect and probe only: print every command that would run and a diff of every file that would change."`
	Concurrency int               `short:"c" default:"100" help:"Hosts worked on in parallel."`
	Format      string            `enum:"human,json" default:"human" help:"human, or json (NDJSON events on stdout, nothing else)."`
	Resume      bool              `help:"Skip, per host, the steps the previous run of this plan and inventory completed." xor:"start"`
	StartAt     string            `help:"Skip every step before this step id." placeholder:"STEP-ID" xor:"start"`
	AskSudoPass bool              `short:"K" help:"Prompt once for the sudo password (fed to sudo on stdin, never in argv)."`
	Quiet       bool              `short:"q" help:"Hide live command output (still in the debug log)."`
}

func (c *RunCmd) Run(g *Globals) error {
	if c.Concurrency < 1 {
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("--concurrency %d: want 1 or more hosts in parallel", c.Concurrency)}
	}
	if c.Inventory == "" {
		c.Inventory = defaultInventory()
	}
	r, err := g.prepare(c.Plan, c.Inventory, c.Param, c.AskSudoPass)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	sum, err := r.run(ctx, runner.Options{Limit: c.Limit, Noop: c.Noop, Concurrency: c.Concurrency,
		Resume: c.Resume, StartAt: c.StartAt}, func(red *secret.Redactor, logPath string) report.Reporter {
		if c.Format == "json" {
			return report.NewJSON(os.Stdout, red)
		}
		return report.NewHuman(os.Stdout, red, report.HumanOptions{Verbose: !c.Quiet, Color: g.Color, LogPath: logPath})
	})
	if err == nil {
		return nil
	}
	code := ExitFailed
	var bad *runner.InputError
	if errors.As(err, &bad) {
		code = ExitInvalid
	}
	if ctx.Err() != nil {
		code = ExitInterrupted
		err = errors.New("interrupted; running commands were signalled")
	}
	msg := r.red.String(err.Error())
	if c.Format == "human" {
		msg = "" // the report already ended with the error and the log's path
	} else {
		msg += "\ndebug log: " + r.logPath
	}
	if sum != nil && len(sum.Counts) > 0 && !c.Noop && code != ExitInvalid {
		msg += fmt.Sprintf("\nto continue where it stopped: troupe run %s -i %s --resume", c.Plan, c.Inventory)
	}
	return &ExitError{Code: code, Err: errors.New(strings.TrimPrefix(msg, "\n"))}
}

// prepared is a plan and inventory loaded, checked and bound, with every
// secret registered for masking: what `troupe run` and a webhook deploy
// share before anything connects.
type prepared struct {
	plan    *plan.Plan
	inv     *inventory.Inventory
	fsys    fs.FS
	params  map[string]any
	red     *secret.Redactor
	state   string
	logPath string
	log     *report.Log // the debug log, always written
}

// prepare loads and binds a run; its errors are ExitInvalid (nothing ran).
func (g *Globals) prepare(planName, invPath string, given map[string]string, askSudo bool) (*prepared, error) {
	p, inv, fsys, err := g.loadAll(planName, invPath)
	if err != nil {
		return nil, err
	}
	red := &secret.Redactor{}
	params, err := bindParams(p, given, red)
	if err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: err}
	}
	if err := resolveSecrets(inv, red, askSudo); err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: err}
	}
	if n := red.TooShort(); n > 0 {
		fmt.Fprintf(os.Stderr, "troupe: warning: %d secret value(s) shorter than %d characters cannot be masked safely and will show in the output\n", n, secret.MinLen)
	}
	state, err := g.stateDir()
	if err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: err}
	}
	// checked (and made) before anything runs: journals and logs go only
	// where no other local user can plant or read them
	if _, err := safefile.MkdirAll(state); err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("refusing the state directory %s: %w", state, err)}
	}
	logPath := report.DefaultLogPath(state)
	logRep, err := report.NewLog(logPath, red)
	if err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("debug log: %w", err)}
	}
	if g.contentNote != "" {
		logRep.Logf("%s", g.contentNote)
	}
	return &prepared{plan: p, inv: inv, fsys: fsys, params: params, red: red, state: state,
		logPath: logPath, log: logRep}, nil
}

// run runs the prepared plan, once, with o's run controls (its plan,
// inventory, content and reporting fields are filled in here). out builds
// the reporter the caller shows; the debug log is written beside it.
func (r *prepared) run(ctx context.Context, o runner.Options, out func(red *secret.Redactor, logPath string) report.Reporter) (*runner.Summary, error) {
	rep := report.Multi(out(r.red, r.logPath), r.log)
	o.Plan, o.Inventory, o.Params, o.StateDir, o.Files, o.Reporter, o.Redactor = r.plan, r.inv, r.params, r.state, r.fsys, rep, r.red
	o.Flavor = hostFlavor
	sum, err := runner.Run(ctx, o)
	rep.Close()
	return sum, err
}

// hostFlavor is the Puppet flavor a host's vars.flavor names.
func hostFlavor(h *inventory.Host) (*puppet.Flavor, error) {
	name, _ := h.Vars["flavor"].(string)
	return puppet.Lookup(name)
}

// bindParams types the --param values ($TROUPE_PARAM_NAME fills in params
// not given on the command line) and registers secret ones for masking.
func bindParams(p *plan.Plan, given map[string]string, red *secret.Redactor) (map[string]any, error) {
	all := map[string]string{}
	for _, prm := range p.Params {
		if v, ok := os.LookupEnv("TROUPE_PARAM_" + strings.ToUpper(prm.Name)); ok {
			all[prm.Name] = v
		}
	}
	for k, v := range given {
		all[k] = v
	}
	for _, prm := range p.Params {
		if prm.Type == "secret" {
			red.Add(all[prm.Name])
			if s, ok := prm.Default.(string); ok {
				red.Add(s)
			}
		}
	}
	return p.BindParams(all)
}

// resolveSecrets reads sudo passwords and key passphrases from their env
// vars (or one prompt) and registers every secret with the redactor.
func resolveSecrets(inv *inventory.Inventory, red *secret.Redactor, ask bool) error {
	var prompted string
	passphrases := keyPrompt{}
	if ask {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return errors.New("--ask-sudo-pass needs a terminal; use the inventory's sudo_password_env instead")
		}
		fmt.Fprint(os.Stderr, "sudo password: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return err
		}
		prompted = string(b)
	}
	for _, h := range inv.Hosts {
		cfg := &h.SSH
		if cfg.SudoPasswordEnv != "" {
			v, ok := os.LookupEnv(cfg.SudoPasswordEnv)
			if !ok {
				return fmt.Errorf("%s: sudo_password_env %s is not set", h.Name, cfg.SudoPasswordEnv)
			}
			cfg.SudoPassword = v
		} else if prompted != "" {
			cfg.SudoPassword = prompted
		}
		if cfg.PassphraseEnv != "" {
			v, ok := os.LookupEnv(cfg.PassphraseEnv)
			if !ok {
				return fmt.Errorf("%s: passphrase_env %s is not set", h.Name, cfg.PassphraseEnv)
			}
			cfg.Passphrase = v
		} else if cfg.PrivateKey != "" {
			p, err := passphrases.forKey(cfg.PrivateKey)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			cfg.Passphrase = p
		}
		red.Add(cfg.SudoPassword, cfg.Passphrase)
	}
	red.Add(inv.SecretValues()...)
	return nil
}

// keyPrompt asks once per encrypted private key for its passphrase, before
// any connection, so a run never stops half-way to ask.
type keyPrompt map[string]string

func (k keyPrompt) forKey(path string) (string, error) {
	if p, ok := k[path]; ok {
		return p, nil
	}
	file := path
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := safefile.Home(); err == nil {
			file = filepath.Join(home, rest)
		} // else left as it is: the transport names the missing key
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return "", nil // the transport reports a missing key with the host's name
	}
	var missing *ssh.PassphraseMissingError
	if _, err := ssh.ParseRawPrivateKey(pem); !errors.As(err, &missing) {
		k[path] = ""
		return "", nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", fmt.Errorf("private key %s is encrypted: set passphrase_env in the inventory, or run from a terminal to be asked", path)
	}
	fmt.Fprintf(os.Stderr, "passphrase for %s: ", path)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if _, err := ssh.ParseRawPrivateKeyWithPassphrase(pem, b); err != nil {
		return "", fmt.Errorf("private key %s: wrong passphrase", path)
	}
	k[path] = string(b)
	return k[path], nil
}

// interruptible returns a context cancelled by the first Ctrl-C (or
// SIGTERM): no new work starts and running remote commands are signalled.
// A second Ctrl-C exits at once with 130.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			n++
			if n == 1 {
				fmt.Fprintln(os.Stderr, "\ninterrupt: stopping new work and signalling running commands (Ctrl-C again to exit now)")
				cancel()
				continue
			}
			os.Exit(ExitInterrupted)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
