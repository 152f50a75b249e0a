package transport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// temps lists the troupe temp files in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".troupe-tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A temp file left beside a destination by an upload that died (a second
// Ctrl-C exits at once) is removed by the next upload to it, on every path:
// sftp, exec without sftp, sudo staging, local. Other files' temps stay.
func TestUploadRemovesStaleTempFiles(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	for name, c := range map[string]transport.Conn{
		"sftp":  dial(t, sshtest.StartServer(t).Config),
		"exec":  dial(t, sshtest.StartServer(t, sshtest.NoSFTP()).Config),
		"sudo":  dial(t, o.User),
		"local": transport.Local(),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "app [1].conf") // glob characters in the name
			os.WriteFile(filepath.Join(dir, ".app [1].conf.troupe-tmp-0123456789ab"), []byte("half-writ"), 0o600)
			os.WriteFile(filepath.Join(dir, ".other.conf.troupe-tmp-0123456789ab"), []byte("not ours"), 0o600)
			err := c.Upload(context.Background(), transport.File{Path: dest, Content: []byte("new\n"), Sudo: name == "sudo"})
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(dest); string(b) != "new\n" {
				t.Errorf("dest holds %q", b)
			}
			if got := temps(t, dir); len(got) != 1 || got[0] != ".other.conf.troupe-tmp-0123456789ab" {
				t.Errorf("temp files left: %v (want only the other file's)", got)
			}
		})
	}
}

// Cancelling an upload (the first Ctrl-C) stops the transfer and removes
// its temp file.
func TestCancelledUploadLeavesNoTempFile(t *testing.T) {
	c := dial(t, sshtest.StartServer(t).Config)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if len(temps(t, dir)) > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	err := c.Upload(ctx, transport.File{Path: filepath.Join(dir, "big"), Content: make([]byte, 256<<20)})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want the upload cancelled, got %v", err)
	}
	if got := temps(t, dir); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); err == nil {
		t.Error("a cancelled upload wrote its destination")
	}
}
