package step

import (
	"context"
	"errors"

	"github.com/troupe/troupe/internal/render"
)

// Command runs a shell command. It counts as a change unless the step says
// otherwise (changed_when, creates, unless, onlyif).
type Command struct {
	Cmd   string `yaml:"cmd"`
	Stdin string `yaml:"stdin"` // fed on stdin; may be a template (e.g. a secret)
	Chdir string `yaml:"chdir"`
	// read_only: the command only looks (a probe whose output later steps
	// decide on), so it runs under --noop too and never counts as a change.
	Probe bool `yaml:"read_only"`
}

func (c *Command) ReadOnly() bool     { return c.Probe }
func (c *Command) SetString(s string) { c.Cmd = s }
func (c *Command) Title() string      { return "Run " + short(c.Cmd) }

func (c *Command) Validate() error {
	if c.Cmd == "" {
		return errors.New("cmd is required")
	}
	return nil
}

func (c *Command) Run(ctx context.Context, x *Exec) (Result, error) {
	cmd, err := x.Render(c.Cmd)
	if err != nil {
		return Result{}, err
	}
	stdin, err := x.Render(c.Stdin)
	if err != nil {
		return Result{}, err
	}
	if c.Chdir != "" {
		dir, err := x.Render(c.Chdir)
		if err != nil {
			return Result{}, err
		}
		cmd = "cd " + render.ShellQuote(dir) + " && " + cmd
	}
	res, err := x.MustChange(ctx, cmd, stdin)
	return commandResult(res, !x.Noop && !c.Probe), err
}

func short(s string) string {
	for i, r := range s {
		if r == '\n' || i > 60 {
			return s[:i] + "…"
		}
	}
	return s
}
