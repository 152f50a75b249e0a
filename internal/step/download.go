package step

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// Download copies a remote file to DEST/HOST/BASENAME on this machine.
type Download struct {
	Src  string `yaml:"src"`
	Dest string `yaml:"dest"` // a local directory
}

func (d *Download) Title() string { return "Download " + d.Src }

func (d *Download) Validate() error {
	if d.Src == "" || d.Dest == "" {
		return errors.New("src and dest are required")
	}
	return nil
}

func (d *Download) Run(ctx context.Context, x *Exec) (Result, error) {
	src, err := x.Render(d.Src)
	if err != nil {
		return Result{}, err
	}
	dest, err := x.Render(d.Dest)
	if err != nil {
		return Result{}, err
	}
	b, err := x.Conn.Download(ctx, src, x.Sudo)
	if err != nil {
		return Result{}, err
	}
	local := filepath.Join(dest, x.Host.Name, filepath.Base(src))
	if old, err := os.ReadFile(local); err == nil && string(old) == string(b) {
		return Result{Msg: local + " up to date"}, nil
	}
	if x.Noop {
		return Result{Changed: true, Msg: "would write " + local}, nil
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return Result{}, err
	}
	tmp := local + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return Result{}, err
	}
	return Result{Changed: true, Msg: local}, os.Rename(tmp, local)
}

// ReadOnly: a download changes this machine, never the host.
func (d *Download) ReadOnly() bool { return true }
