package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	parts, err := statPath(ctx, x, path, owner != "" || group != "")
	if err != nil {
		return Result{}, err
	}
	exists := parts != nil
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

// statPath is `stat -c '%F|%a|%U|%G' p` split at "|", nil when p does not
// exist. Unless the owner's and group's names are needed (SFTP tells only
// ids), it asks over the SFTP channel when it can (see Exec.lstat).
func statPath(ctx context.Context, x *Exec, p string, names bool) ([]string, error) {
	if !names {
		if a, exists, ok := x.lstat(p); ok {
			if !exists {
				return nil, nil
			}
			return []string{fileType(a.Mode), fmt.Sprintf("%o", a.Perm), "", ""}, nil
		}
	}
	st, err := x.Probe(ctx, "stat -c '%F|%a|%U|%G' "+render.ShellQuote(p)+" 2>/dev/null")
	if err != nil || st.ExitCode != 0 {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(st.Stdout), "|"), nil
}

// fileType names m's type as stat's %F does.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character special file"
	case m&fs.ModeDevice != 0:
		return "block special file"
	}
	return "weird file"
}
