package step

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/transport"
)

// sessionCounter is a real (local) host that counts the sessions asked of
// it: every Run is one session on an SSH host.
type sessionCounter struct {
	transport.Conn
	mu   sync.Mutex
	runs int
}

func (c *sessionCounter) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	return c.Conn.Run(ctx, cmd)
}

// wait.while costs no session of its own: each poll is one probe that runs
// the check and then the while command. The target turns ready at the third
// poll, so three polls must cost three sessions; a while that fails gives up
// at the first poll, in one session, with the while command's exit status.
func TestWaitWhileSharesTheProbeSession(t *testing.T) {
	dir := t.TempDir()
	n := filepath.Join(dir, "n")
	run := func(w *Wait) (Result, int, error) {
		t.Helper()
		if err := w.Validate(); err != nil {
			t.Fatal(err)
		}
		c := &sessionCounter{Conn: transport.Local()}
		x := &Exec{Host: &inventory.Host{Name: "h"}, Conn: c, Data: map[string]any{}}
		res, err := w.Run(context.Background(), x)
		return res, c.runs, err
	}

	// ready at the third poll: the counter file reads 0, 1, then 2
	ready := `n=$(cat ` + n + ` 2>/dev/null || echo 0); echo $((n+1)) > ` + n + `; echo "poll $n" >&2; [ "$n" -ge 2 ]`
	res, sessions, err := run(&Wait{Command: ready, While: "exit 0", Interval: "1ms", Timeout: "1m"})
	if err != nil || !strings.HasPrefix(res.Msg, "ready") {
		t.Fatalf("wait = %+v, %v; want ready", res, err)
	}
	if b, _ := os.ReadFile(n); strings.TrimSpace(string(b)) != "3" {
		t.Fatalf("the check ran %q times, want 3", b)
	}
	if sessions != 3 {
		t.Errorf("3 polls with while opened %d sessions, want 3 (one per poll)", sessions)
	}

	os.Remove(n)
	_, sessions, err = run(&Wait{Command: ready, While: "echo noise; echo more >&2; exit 3", Interval: "1ms", Timeout: "1m"})
	if err == nil || !strings.Contains(err.Error(), `failed (exit 3)`) || !strings.Contains(err.Error(), "last seen: exit 1: poll 0") {
		t.Errorf("a failing while: %v; want it to give up naming exit 3 and the check's own last output", err)
	}
	if sessions != 1 {
		t.Errorf("a while that failed at the first poll opened %d sessions, want 1", sessions)
	}
}
