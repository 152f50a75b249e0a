package step

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/troupe/troupe/internal/render"
)

// File makes a path a directory, an (empty if new) file, or absent.
type File struct {
	Path  string `yaml:"path"`
	State string `yaml:"state"` // directory | touch | absent
	Mode  string `yaml:"mode"`
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
}

func (f *File) Title() string { return fmt.Sprintf("Ensure %s %s", f.Path, f.State) }

func (f *File) Validate() error {
	if f.Path == "" {
		return errors.New("path is required")
	}
	switch f.State {
	case "directory", "touch", "absent":
	default:
		return fmt.Errorf("state %q: want directory, touch or absent", f.State)
	}
	_, err := parseMode(f.Mode)
	return err
}

func (f *File) Run(ctx context.Context, x *Exec) (Result, error) {
	path, err := x.Render(f.Path)
	if err != nil {
		return Result{}, err
	}
	owner, err := x.Render(f.Owner)
	if err != nil {
		return Result{}, err
	}
	group, err := x.Render(f.Group)
	if err != nil {
		return Result{}, err
	}
	q := render.ShellQuote(path)
	st, err := x.Probe(ctx, "stat -c '%F|%a|%U|%G' "+q+" 2>/dev/null")
	if err != nil {
		return Result{}, err
	}
	exists := st.ExitCode == 0
	parts := strings.Split(strings.TrimSpace(st.Stdout), "|")
	if f.State == "absent" {
		if !exists {
			return Result{Msg: path + " absent"}, nil
		}
		_, err := x.MustChange(ctx, "rm -rf -- "+q, "")
		return Result{Changed: true, Msg: path + " removed"}, err
	}
	var cmds []string
	wantType := "directory"
	if f.State == "touch" {
		wantType = "regular"
	}
	if !exists || !strings.Contains(parts[0], wantType) {
		if exists {
			return Result{}, fmt.Errorf("%s exists and is a %s", path, parts[0])
		}
		if f.State == "directory" {
			cmds = append(cmds, "mkdir -p -- "+q)
		} else {
			cmds = append(cmds, ": >> "+q)
		}
		parts = []string{"", "", "", ""}
	}
	if f.Mode != "" {
		m, _ := parseMode(f.Mode)
		if parts[1] != fmt.Sprintf("%o", m) {
			cmds = append(cmds, fmt.Sprintf("chmod %o -- %s", m, q))
		}
	}
	if owner != "" && parts[2] != owner {
		cmds = append(cmds, "chown "+render.ShellQuote(owner)+" -- "+q)
	}
	if group != "" && parts[3] != group {
		cmds = append(cmds, "chgrp "+render.ShellQuote(group)+" -- "+q)
	}
	if len(cmds) == 0 {
		return Result{Msg: path + " ok"}, nil
	}
	_, err = x.MustChange(ctx, strings.Join(cmds, " && "), "")
	return Result{Changed: true, Msg: path}, err
}
