package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/troupe/troupe/internal/transport"
)

// Upload writes a file atomically (temp file, mode, owner, rename), and only
// when the remote content or attributes differ.
type Upload struct {
	Src     string `yaml:"src"`     // files/NAME from the plans' content, or a local path
	Content string `yaml:"content"` // or inline content (not rendered; use template for that)
	Dest    string `yaml:"dest"`
	Mode    string `yaml:"mode"` // octal, e.g. "0640"; default 0644
	Owner   string `yaml:"owner"`
	Group   string `yaml:"group"`
}

func (u *Upload) Title() string { return "Upload " + u.Dest }

func (u *Upload) Validate() error {
	if u.Dest == "" {
		return errors.New("dest is required")
	}
	if (u.Src == "") == (u.Content == "") {
		return errors.New("set exactly one of src and content")
	}
	_, err := parseMode(u.Mode)
	return err
}

func (u *Upload) CheckSource(fsys fs.FS) error {
	_, err := checkSource(fsys, u.Src)
	return err
}

func (u *Upload) Run(ctx context.Context, x *Exec) (Result, error) {
	content := []byte(u.Content)
	if u.Src != "" {
		src, err := x.Render(u.Src)
		if err != nil {
			return Result{}, err
		}
		if content, err = readSource(x.Files, src); err != nil {
			return Result{}, err
		}
	}
	return writeFile(ctx, x, u.Dest, content, u.Mode, u.Owner, u.Group)
}

// writeFile renders the destination and attributes and writes content.
func writeFile(ctx context.Context, x *Exec, dest string, content []byte, mode, owner, group string) (Result, error) {
	dest, err := x.Render(dest)
	if err != nil {
		return Result{}, err
	}
	m, _ := parseMode(mode)
	owner, err = x.Render(owner)
	if err != nil {
		return Result{}, err
	}
	group, err = x.Render(group)
	if err != nil {
		return Result{}, err
	}
	changed, err := x.WriteFile(ctx, transport.File{Path: dest, Content: content, Mode: m, Owner: owner, Group: group})
	if err != nil {
		return Result{}, err
	}
	msg := dest + " up to date"
	if changed {
		msg = dest + " written"
	}
	return Result{Changed: changed, Msg: msg}, nil
}

func parseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return 0o644, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q: want an octal mode like \"0640\"", s)
	}
	return fs.FileMode(v), nil
}
