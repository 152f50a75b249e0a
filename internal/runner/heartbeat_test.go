package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// The heartbeat keeps a run's lock for longer than the takeover age: with
// a 250ms beat and a 2s takeover age, a second run is refused for three
// takeover ages while the first's heartbeat lives, and takes the lock over
// once the heartbeat stops (a run that died without releasing it), not
// before the lock's last touch is a takeover age old, less the 1 s that
// both ages are read in (the shell's `date +%s` and `stat -c %Y`, SFTP's
// 32-bit mtime: whole seconds). Over the shell lock (lockScript, here on
// this machine) and over SFTP (real OpenSSH).
func TestHeartbeatKeepsTheLockPastTheTakeoverAge(t *testing.T) {
	times := LockTimes{Beat: 250 * time.Millisecond, Stale: 2 * time.Second}
	t.Run("shell", func(t *testing.T) {
		dir := t.TempDir()
		dial := func(context.Context, transport.Config) (transport.Conn, error) {
			return hostConn{Conn: transport.Local(), dir: dir}, nil
		}
		heartbeatHolds(t, dial, transport.Config{}, filepath.Join(dir, "troupe.lock"), times)
	})
	t.Run("sftp", func(t *testing.T) {
		o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
		dir := t.TempDir()
		heartbeatHolds(t, transport.Dial, o.Root, filepath.Join(dir, "troupe.lock"), times)
	})
}

func heartbeatHolds(t *testing.T, dial func(context.Context, transport.Config) (transport.Conn, error), cfg transport.Config, lock string, times LockTimes) {
	ctx := context.Background()
	h := &inventory.Host{Name: "h", SSH: cfg, Vars: map[string]any{"troupe_lock": lock}}
	pools := map[string]*pool{} // one connection per run, as a run has
	acquire := func(plan string) (*locks, error) {
		if pools[plan] == nil {
			pools[plan] = newPool(dial, &secret.Redactor{})
			t.Cleanup(pools[plan].closeAll)
		}
		c, err := pools[plan].get(ctx, h)
		if err != nil {
			return nil, err
		}
		l := newLocks(plan, times)
		l.take(ctx, h, c, nil)
		if err := l.settle(); err != nil {
			return nil, err
		}
		return l, nil
	}
	first, err := acquire("first")
	if err != nil {
		t.Fatal(err)
	}
	if first.files[h.Name] == nil && strings.Contains(t.Name(), "sftp") {
		t.Fatal("the lock was not taken over SFTP")
	}
	if _, err := acquire("second"); err == nil { // dials the second run's connection
		t.Fatal("a second run took a lock just taken")
	}
	tries := 0
	for end := time.Now().Add(3 * times.Stale); time.Now().Before(end); tries++ {
		time.Sleep(times.Beat) // a heartbeat period between tries
		second, err := acquire("second")
		if err == nil {
			second.release()
			t.Fatalf("a second run took the lock %d tries in, while the first's heartbeat lived", tries)
		}
		// the holder's text may read empty: the SFTP heartbeat rewrites it
		if !strings.Contains(err.Error(), `locked by "troupe run first`) && !strings.Contains(err.Error(), `locked by ""`) {
			t.Fatalf("refused for another reason: %v", err)
		}
	}
	if tries < 2 {
		t.Fatalf("only %d tries", tries)
	}
	// the first run dies: its heartbeat stops, its lock stays
	first.stop()
	first.wg.Wait()
	stopped := time.Now()
	// The last touch, to the nanosecond (the lock is on this machine): the
	// age the takeover is judged by starts there, not at the stop, which
	// may come up to a beat (more on a loaded machine) after it.
	fi, err := os.Stat(filepath.Join(lock, "owner"))
	if err != nil {
		t.Fatal(err)
	}
	touched := fi.ModTime()
	for {
		time.Sleep(times.Beat)
		second, err := acquire("second")
		if err == nil {
			if age := time.Since(touched); age < times.Stale-time.Second {
				t.Errorf("taken over when the lock was %s old, before the takeover age %s (less the 1 s the age is read in)", age, times.Stale)
			}
			second.release()
			return
		}
		if time.Since(stopped) > 3*times.Stale+2*time.Second {
			t.Fatalf("the lock of a dead run was not taken over: %v", err)
		}
	}
}
