package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/troupe/troupe/internal/render"
)

// Template renders a Go template locally against the host's scope, compares
// it with the remote file and writes it only on change (a diff under --noop).
type Template struct {
	Src     string `yaml:"src"`     // templates/NAME from the plans' content, or a local path
	Content string `yaml:"content"` // or an inline template
	Dest    string `yaml:"dest"`
	Mode    string `yaml:"mode"`
	Owner   string `yaml:"owner"`
	Group   string `yaml:"group"`
}

func (t *Template) Title() string { return "Render " + t.Dest }

func (t *Template) Validate() error {
	if t.Dest == "" {
		return errors.New("dest is required")
	}
	if (t.Src == "") == (t.Content == "") {
		return errors.New("set exactly one of src and content")
	}
	_, err := parseMode(t.Mode)
	return err
}

// CheckSource reads and parses the template file (its src is never itself
// rendered, so it is always known at load time).
func (t *Template) CheckSource(fsys fs.FS) error {
	if t.Src == "" {
		return nil
	}
	b, err := readSource(fsys, t.Src)
	if err != nil {
		return fmt.Errorf("src %q: %w", t.Src, err)
	}
	return render.CheckFile(t.Src, string(b))
}

func (t *Template) Run(ctx context.Context, x *Exec) (Result, error) {
	text, name := t.Content, "inline template"
	if t.Src != "" {
		b, err := readSource(x.Files, t.Src)
		if err != nil {
			return Result{}, err
		}
		text, name = string(b), t.Src
	}
	out, err := render.File(name, text, x.Data)
	if err != nil {
		return Result{}, err
	}
	return writeFile(ctx, x, t.Dest, out, t.Mode, t.Owner, t.Group)
}
