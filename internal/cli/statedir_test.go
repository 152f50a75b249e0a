package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// Without $HOME (a root timer), the state directory is the caller's own
// home from the user database, never a fixed name in $TMPDIR that any
// local user could create first.
func TestStateDirWithoutHome(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("HOME", "")
	t.Setenv("XDG_STATE_HOME", "")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&Globals{}).stateDir()
	if want := filepath.Join(u.HomeDir, ".local", "state", "troupe"); err != nil || got != want {
		t.Errorf("no $HOME: %q, %v; want %q", got, err, want)
	}
	if strings.HasPrefix(got, tmp) || strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("state directory %s is in the shared temporary directory", got)
	}
	t.Setenv("XDG_STATE_HOME", "/srv/state")
	if got, err := (&Globals{}).stateDir(); err != nil || got != "/srv/state/troupe" {
		t.Errorf("$XDG_STATE_HOME: %q, %v", got, err)
	}
	t.Setenv("XDG_STATE_HOME", "relative") // invalid per the XDG spec: ignored
	if got, _ := (&Globals{}).stateDir(); got == "relative/troupe" {
		t.Errorf("a relative $XDG_STATE_HOME was used")
	}
	if got, err := (&Globals{StateDir: "/given"}).stateDir(); err != nil || got != "/given" {
		t.Errorf("--state-dir: %q, %v", got, err)
	}
}
