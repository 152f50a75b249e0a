package step

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

func downloadExec(t *testing.T, noop bool) (*Exec, *fakeConn) {
	c := newFake(t)
	c.set("/var/backups/ca-ca.example-1.tar.gz", []byte("ca_key.pem and friends"))
	return &Exec{Host: &inventory.Host{Name: "ca.example"}, Conn: c, Noop: noop, Data: map[string]any{}}, c
}

// ca-backup -p download=/tmp with /tmp/HOST made first by another user
// (nobody here) and the file's names planted as links to a file of theirs.
func TestDownloadRefusesAnotherUsersHostDirectory(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), "tmp")
	os.Mkdir(tmp, 0o777)
	os.Chmod(tmp, 0o777|fs.ModeSticky)
	hostDir := filepath.Join(tmp, "ca.example")
	os.Mkdir(hostDir, 0o755)
	os.Chown(hostDir, 65534, 65534)
	target := filepath.Join(t.TempDir(), "theirs")
	os.WriteFile(target, []byte("original"), 0o644)
	for _, name := range []string{"ca-ca.example-1.tar.gz.tmp", "ca-ca.example-1.tar.gz"} {
		os.Symlink(target, filepath.Join(hostDir, name))
		os.Lchown(filepath.Join(hostDir, name), 65534, 65534)
	}

	x, _ := downloadExec(t, false)
	d := &Download{Src: "/var/backups/ca-ca.example-1.tar.gz", Dest: tmp}
	res, err := d.Run(context.Background(), x)
	if err == nil || !strings.Contains(err.Error(), hostDir) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("got %+v, %v; want a refusal naming %s and its owner", res, err, hostDir)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("the archive went through the planted link: %q", b)
	}

	// positive control: the same download into a DIR/HOST of our own
	own := t.TempDir()
	d.Dest = own
	res, err = d.Run(context.Background(), x)
	if err != nil || !res.Changed {
		t.Fatalf("%+v, %v", res, err)
	}
	local := filepath.Join(own, "ca.example", "ca-ca.example-1.tar.gz")
	fi, err := os.Lstat(local)
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("%s: %v %v, want a regular file 0600", local, fi.Mode(), err)
	}
	if b, _ := os.ReadFile(local); string(b) != "ca_key.pem and friends" {
		t.Errorf("downloaded %q", b)
	}
	if fi, _ := os.Stat(filepath.Dir(local)); fi.Mode().Perm() != 0o700 {
		t.Errorf("host directory mode %v, want 0700", fi.Mode())
	}
	if res, err := d.Run(context.Background(), x); err != nil || res.Changed {
		t.Errorf("second download: %+v, %v; want up to date", res, err)
	}
}

func TestDownloadNoopWritesNothing(t *testing.T) {
	x, _ := downloadExec(t, true)
	dest := filepath.Join(t.TempDir(), "backups")
	res, err := (&Download{Src: "/var/backups/ca-ca.example-1.tar.gz", Dest: dest}).Run(context.Background(), x)
	if err != nil || !res.Changed || !strings.HasPrefix(res.Msg, "would write") {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("noop made the directory")
	}
}

// src and dest are templates; the host's file lands in DEST/HOST/BASENAME,
// read with the step's sudo; a changed remote file is written again.
func TestDownloadWritesChanges(t *testing.T) {
	x, c := downloadExec(t, false)
	x.Sudo = true
	x.Data["vars"] = map[string]any{"dir": "/var/backups"}
	x.Data["host"] = map[string]any{"name": "ca.example"}
	dest := t.TempDir()
	d := &Download{Src: "{{ .vars.dir }}/ca-{{ .host.name }}-1.tar.gz", Dest: dest}
	res, err := d.Run(context.Background(), x)
	local := filepath.Join(dest, "ca.example", "ca-ca.example-1.tar.gz")
	if err != nil || !res.Changed || res.Msg != local {
		t.Fatalf("%+v %v", res, err)
	}
	if got := c.Downloads(transporttest.Any()); len(got) != 1 || got[0].Path != "/var/backups/ca-ca.example-1.tar.gz" || !got[0].Sudo {
		t.Errorf("downloads %+v", got)
	}
	c.set("/var/backups/ca-ca.example-1.tar.gz", []byte("a newer archive"))
	if res, err := d.Run(context.Background(), x); err != nil || !res.Changed {
		t.Fatalf("changed remote: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(local); string(b) != "a newer archive" {
		t.Errorf("local %q", b)
	}
	if len(c.ran()) != 0 {
		t.Errorf("commands sent: %q", c.ran())
	}
	if !d.ReadOnly() {
		t.Error("download is not read-only")
	}
}

// A file the host does not have, or will not give, is the step's error,
// and nothing is made here.
func TestDownloadHostErrors(t *testing.T) {
	x, c := downloadExec(t, false)
	dest := filepath.Join(t.TempDir(), "backups")
	_, err := (&Download{Src: "/var/backups/none.tar.gz", Dest: dest}).Run(context.Background(), x)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/var/backups/none.tar.gz") {
		t.Errorf("missing: %v", err)
	}
	c.FailDownload(transporttest.HasPrefix("/root/"), &fs.PathError{Op: "sudo cat", Path: "/root/x", Err: fs.ErrPermission})
	if _, err = (&Download{Src: "/root/x", Dest: dest}).Run(context.Background(), x); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("refused: %v", err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("a failed download made the directory")
	}
	for _, d := range []Download{{Src: "/x"}, {Dest: "/tmp"}} {
		if err := d.Validate(); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
}
