package transport_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/transport"
)

// TestMain keeps the developer's SSH setup out: HOME is a temp dir (no
// ~/.ssh) and there is no agent.
func TestMain(m *testing.M) {
	home, err := os.MkdirTemp("", "troupe-home-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("HOME", home)
	os.Setenv("SSH_AUTH_SOCK", "")
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

func dial(t *testing.T, cfg transport.Config) transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.Host, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c transport.Conn, cmd transport.Cmd) transport.Result {
	t.Helper()
	res, err := c.Run(context.Background(), cmd)
	if err != nil {
		t.Fatalf("run %q: %v", cmd.Command, err)
	}
	return res
}

// checkCancelKills runs `sleep; touch marker` (on a host that shares this
// machine's process table and file system), cancels it, and checks that the
// sleep is gone and the marker never appears.
func checkCancelKills(t *testing.T, c transport.Conn, sudo bool) {
	t.Helper()
	token := fmt.Sprintf("2.0%08d", time.Now().UnixNano()%100_000_000) // unique sleep argument, about 2s
	marker := fmt.Sprintf("/tmp/troupe-cancel-marker-%s", token)
	t.Cleanup(func() { os.Remove(marker) })
	// Cancel once the remote sleep runs: a fixed delay raced the remote
	// shell's start on a loaded machine, and the test is about a command
	// that is running when its context ends. The pattern is anchored: the
	// wrapping shell's command line holds "sleep TOKEN" too, from its first
	// instant, long before the sleep itself runs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if exec.Command("pgrep", "-f", "^sleep "+token).Run() == nil {
				break
			}
		}
		cancel()
	}()
	start := time.Now()
	_, err := c.Run(ctx, transport.Cmd{Command: "cd /tmp && sleep " + token + " && touch " + marker, Sudo: sudo})
	if err != context.Canceled {
		t.Fatalf("Run after cancel: err = %v, want context.Canceled", err)
	}
	// The remote sleep must be gone (give the kill a moment to land).
	var out []byte
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err = exec.Command("pgrep", "-af", "sleep "+token).Output()
		if err != nil { // exit 1: no process
			break
		}
	}
	if err == nil {
		t.Fatalf("remote command still running after cancel:\n%s", out)
	}
	// And the rest of the command line never ran.
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("marker %s created: the cancelled command completed", marker)
	}
}

func mustContain(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s = %q, want it to contain %q", what, s, sub)
	}
}
