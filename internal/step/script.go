package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/transport"
)

// Script runs a script through an interpreter, feeding it on stdin, so
// nothing is left on the host.
type Script struct {
	Content     string   `yaml:"content"` // inline script (rendered as a template)
	Src         string   `yaml:"src"`     // or a file: files/NAME from the plans' content, or a local path
	Args        []string `yaml:"args"`
	Interpreter string   `yaml:"interpreter"` // default /bin/sh
}

func (s *Script) Title() string { return "Run script " + s.Src }

func (s *Script) Validate() error {
	if (s.Content == "") == (s.Src == "") {
		return errors.New("set exactly one of content and src")
	}
	return nil
}

func (s *Script) Run(ctx context.Context, x *Exec) (Result, error) {
	body := s.Content
	if s.Src != "" {
		b, err := readSource(x.Files, s.Src)
		if err != nil {
			return Result{}, err
		}
		body = string(b)
	}
	body, err := x.Render(body)
	if err != nil {
		return Result{}, err
	}
	args, err := x.RenderAll(s.Args)
	if err != nil {
		return Result{}, err
	}
	interp := s.Interpreter
	if interp == "" {
		interp = "/bin/sh"
	}
	cmd := interp + " -s --"
	for _, a := range args {
		cmd += " " + render.ShellQuote(a)
	}
	res, err := x.MustChange(ctx, cmd, body)
	return commandResult(res, !x.Noop), err
}

// readSource reads a plan-relative file from the content FS, or a local path.
func readSource(fsys fs.FS, name string) ([]byte, error) {
	if fsys != nil && !strings.HasPrefix(name, "/") {
		if b, err := fs.ReadFile(fsys, name); err == nil {
			return b, nil
		}
	}
	return os.ReadFile(name)
}

// checkSource reads a src named literally; a src holding a template is only
// known per host at run time and is not read (nil content, no error).
func checkSource(fsys fs.FS, name string) ([]byte, error) {
	if name == "" || strings.Contains(name, "{{") {
		return nil, nil
	}
	b, err := readSource(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("src %q: %w", name, err)
	}
	return b, nil
}

func (s *Script) CheckSource(fsys fs.FS) error {
	_, err := checkSource(fsys, s.Src)
	return err
}

func commandResult(res transport.Result, ran bool) Result {
	return Result{Changed: ran, Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode}
}
