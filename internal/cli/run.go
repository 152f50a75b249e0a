package cli

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/troupe/troupe/internal/secret"
)

// RunCmd runs a plan.
type RunCmd struct {
	Plan        string            `arg:"" help:"Plan name (plans/NAME.yaml) or path to a plan file."`
	Inventory   string            `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Param       map[string]string `short:"p" help:"Plan parameter NAME=VALUE (repeatable). Secret params can come from $TROUPE_PARAM_NAME instead, keeping them out of argv." placeholder:"NAME=VALUE"`
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
	p, inv, fsys, err := g.loadAll(c.Plan, c.Inventory)
	if err != nil {
		return err
	}
	red := &secret.Redactor{}
	params, err := bindParams(p, c.Param, red)
	if err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	if err := resolveSecrets(inv, red, c.AskSudoPass); err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	if n := red.TooShort(); n > 0 {
		fmt.Fprintf(os.Stderr, "troupe: warning: %d secret value(s) shorter than %d characters cannot be masked safely and will show in the output\n", n, secret.MinLen)
	}

	state := g.stateDir()
	logPath := report.DefaultLogPath(state)
	logRep, err := report.NewLog(logPath, red)
	if err != nil {
		return err
	}
	var out report.Reporter
	if c.Format == "json" {
		out = report.NewJSON(os.Stdout, red)
	} else {
		out = report.NewHuman(os.Stdout, red, report.HumanOptions{Verbose: !c.Quiet, Color: g.Color, LogPath: logPath})
	}
	rep := report.Multi(out, logRep)

	ctx, stop := interruptible()
	defer stop()
	sum, err := runner.Run(ctx, runner.Options{
		Plan: p, Inventory: inv, Params: params, Limit: c.Limit, Noop: c.Noop,
		Concurrency: c.Concurrency, Resume: c.Resume, StartAt: c.StartAt,
		StateDir: state, Files: fsys, Reporter: rep, Redactor: red,
		Scope: func(h *inventory.Host) (map[string]any, error) {
			flavor, _ := h.Vars["flavor"].(string)
			return puppet.Scope(flavor)
		},
	})
	rep.Close()
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
	msg := red.String(err.Error())
	if c.Format == "human" {
		msg = "" // the report already ended with the error and the log's path
	} else {
		msg += "\ndebug log: " + logPath
	}
	if sum != nil && len(sum.Counts) > 0 && !c.Noop && code != ExitInvalid {
		msg += fmt.Sprintf("\nto continue where it stopped: troupe run %s -i %s --resume", c.Plan, c.Inventory)
	}
	return &ExitError{Code: code, Err: errors.New(strings.TrimPrefix(msg, "\n"))}
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
		home, _ := os.UserHomeDir()
		file = filepath.Join(home, rest)
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
