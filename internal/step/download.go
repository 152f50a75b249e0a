package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/troupe/troupe/internal/safefile"
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
	// Only into a directory no other local user controls (safefile): a
	// pre-made DIR/HOST of someone else's, or a link they planted, would
	// get the file (the CA's key in ca-backup's archive).
	dir, err := safefile.CheckDir(filepath.Dir(local))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("download to %s: %w", filepath.Dir(local), err)
	}
	if err == nil {
		if old, err := os.ReadFile(filepath.Join(dir, filepath.Base(local))); err == nil && string(old) == string(b) {
			return Result{Msg: local + " up to date"}, nil
		}
	}
	if x.Noop {
		return Result{Changed: true, Msg: "would write " + local}, nil
	}
	// mode 0600: what is downloaded may be secret (the CA archive is)
	if err := safefile.WriteFile(local, b, 0o600); err != nil {
		return Result{}, fmt.Errorf("download to %s: %w", filepath.Dir(local), err)
	}
	return Result{Changed: true, Msg: local}, nil
}

// ReadOnly: a download changes this machine, never the host.
func (d *Download) ReadOnly() bool { return true }
