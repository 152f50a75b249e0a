package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/secret"
)

const touchPlan = `name: p
steps:
  - id: a
    targets: web
    command: "touch $H/ran"
`

// A link planted at the journal's old fixed ".new" name (and at the journal
// itself) is replaced, not written through; the journal is a fresh 0600 file.
func TestJournalNeverWritesThroughALink(t *testing.T) {
	f := setup(t, touchPlan, "web1")
	j, err := loadJournal(f.state, "p", f.inv.File, &secret.Redactor{})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("original"), 0o644)
	for _, p := range []string{j.path + ".new", j.path} {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("the journal went through the link: %q", b)
	}
	fi, err := os.Lstat(j.path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal %s: %v, %v; want a regular file 0600", j.path, fi.Mode(), err)
	}
	if b, _ := os.ReadFile(j.path); !strings.Contains(string(b), `"type":"start"`) || !strings.Contains(string(b), `"step":"a"`) {
		t.Errorf("journal holds:\n%s", b)
	}
}

// A state directory other users can write in, or another user's, is
// refused before any host is touched; a proper one (the control) is used.
func TestUnsafeStateDirRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   os.FileMode
		owner  int
		reason string
	}{
		{"world-writable", 0o777, 0, "world-writable (mode 0777)"},
		{"another user's", 0o700, 65534, "owned by uid 65534"},
		{"control", 0o700, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, touchPlan, "web1")
			os.Mkdir(f.state, c.mode)
			os.Chmod(f.state, c.mode)
			os.Chown(f.state, c.owner, c.owner)
			_, _, err := f.run(context.Background(), nil)
			ran := exists(filepath.Join(f.hostDir("web1"), "ran"))
			if c.reason == "" {
				if err != nil || !ran {
					t.Fatalf("proper state dir: %v (ran %v)", err, ran)
				}
				return
			}
			var bad *InputError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), f.state) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("got %v; want an input error naming %s (%s)", err, f.state, c.reason)
			}
			if ran || exists(filepath.Join(f.state, "journal")) {
				t.Errorf("refused, yet the step ran (%v) or the journal was made", ran)
			}
		})
	}
}
