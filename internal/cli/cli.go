// Package cli holds troupe's commands: what each one checks, runs and prints.
// cmd/troupe only wires them into kong.
package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/troupe/troupe/internal/safefile"
)

// CLI is the command tree.
type CLI struct {
	Globals

	Run        RunCmd        `cmd:"" help:"Run a plan against an inventory."`
	Status     StatusCmd     `cmd:"" help:"One table of the site's state: packages, services, HAProxy, JRuby, certificates, code drift, PuppetDB (read-only; exit 1 when unhealthy)."`
	Plan       PlanCmd       `cmd:"" help:"List, show and validate plans."`
	Inventory  InventoryCmd  `cmd:"" help:"Show the resolved inventory."`
	Webhook    WebhookCmd    `cmd:"" help:"Deploy the pushed branch's environment on push events."`
	Schema     SchemaCmd     `cmd:"" help:"Print the JSON Schema of plan, role or inventory files."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	Lab        LabCmd        `cmd:"" help:"A real multi-host Puppet site on this machine (Linux, root)."`
	Version    VersionCmd    `cmd:"" help:"Print troupe's version, commit, Go version and platform."`
}

// Globals are flags every command takes.
type Globals struct {
	Content  string `help:"Directory whose plans/ and roles/ override the shipped ones (default: the current directory when it has them; never for webhook serve). Announced on stderr; refused when another user could have written it." env:"TROUPE_CONTENT" placeholder:"DIR"`
	StateDir string `help:"Where journals and debug logs go." env:"TROUPE_STATE_DIR" placeholder:"DIR"`
	Color    string `help:"Colour: auto, always or never." enum:"auto,always,never" default:"auto"`

	noCwdContent bool   // webhook serve: content only from --content, never the working directory
	contentNote  string // the content override last announced (see loader)
}

// stateDir is --state-dir ($TROUPE_STATE_DIR), else $XDG_STATE_HOME/troupe,
// else ~/.local/state/troupe, ~ from $HOME or, without it (a root timer),
// the user database's home of the caller. Never a fixed name in a shared
// directory such as $TMPDIR, which any local user could create first;
// whichever it is, safefile checks it before anything is written there.
func (g *Globals) stateDir() (string, error) {
	if g.StateDir != "" {
		return g.StateDir, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) { // a relative one is invalid (XDG spec)
		return filepath.Join(d, "troupe"), nil
	}
	home, err := safefile.Home()
	if err != nil {
		return "", fmt.Errorf("no state directory for journals and debug logs: %w; give one with --state-dir or $TROUPE_STATE_DIR", err)
	}
	return filepath.Join(home, ".local", "state", "troupe"), nil
}

// ExitError carries a process exit code up to main.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit codes.
const (
	ExitFailed      = 1   // a step failed
	ExitInvalid     = 2   // bad input: nothing ran
	ExitInterrupted = 130 // Ctrl-C
)
