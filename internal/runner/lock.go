package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/fanout"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/transport"
)

// The host lock (after k0sctl's phase/lock.go): a directory made with
// mkdir, so only one run holds it, holding an owner file its holder touches
// every lockBeat. A lock whose owner file has not been touched for lockStale
// belongs to a run that died; it is taken over with a warning in its message.
//
// The lock must not be redirectable by another user: a lock in /tmp could be
// a symlink planted there, through which a root run would write to any file.
// So it lives in a directory only the login user (or root) can write:
// /run/troupe for root, else $XDG_RUNTIME_DIR/troupe or ~/.cache/troupe. The
// host's var `troupe_lock` may name another path (hosts that share one
// machine, such as many sshd in a benchmark); its directory is held to the
// same rule. mkdir never follows a symlink, and in such a directory nobody
// else can plant one. The price: runs by two different non-root login users
// do not see each other's locks.
const (
	lockBeat  = 10 * time.Second
	lockStale = 45 * time.Second
)

// LockTimes are the heartbeat period and the takeover age of the host
// lock; zero takes the default (lockBeat, lockStale). Tests shorten them.
type LockTimes struct {
	Beat, Stale time.Duration
}

func (t LockTimes) beat() time.Duration {
	if t.Beat > 0 {
		return t.Beat
	}
	return lockBeat
}

func (t LockTimes) stale() time.Duration {
	if t.Stale > 0 {
		return t.Stale
	}
	return lockStale
}

type locks struct {
	conns    map[string]transport.Conn
	paths    map[string]string
	files    map[string]transport.FileOps // hosts locked over SFTP (see lockFiles)
	token    string
	times    LockTimes
	stopped  context.Context    // done once the locks are being released: no beat starts then
	stop     context.CancelFunc // stops the heartbeat
	wg       sync.WaitGroup
	mu       sync.Mutex
	failed   []string
	refusals []string // hosts take could not lock, with why
	heldBy   []error  // the refusals that are another run's lock
}

// newLocks starts a run's locks: take locks each host as it is connected,
// settle says whether every host was locked.
func newLocks(planName string, times LockTimes) *locks {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	machine, _ := os.Hostname()
	token := fmt.Sprintf("troupe run %s by %s@%s pid %d since %s", planName, who, machine, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	stopped, stop := context.WithCancel(context.Background())
	return &locks{conns: map[string]transport.Conn{}, paths: map[string]string{}, files: map[string]transport.FileOps{}, token: token, times: times,
		stopped: stopped, stop: stop}
}

// take locks host h over c, or notes who refused it (label: how to name a
// host, see pool.connect). Safe for concurrent use.
func (l *locks) take(ctx context.Context, h *inventory.Host, c transport.Conn, label map[string]string) {
	path, _ := h.Vars["troupe_lock"].(string) // "" is the login user's own directory
	path, fo, err := lockOne(ctx, c, path, l.token, l.times.stale())
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.refusals = append(l.refusals, fmt.Sprintf("  %s: %v", labelOf(label, h.Name), err))
		if held := (*LockHeldError)(nil); errors.As(err, &held) {
			l.heldBy = append(l.heldBy, held)
		}
		return
	}
	l.conns[h.Name] = c
	l.paths[h.Name] = path
	if fo != nil {
		l.files[h.Name] = fo
	}
}

// settle locks every host or none: on any refusal the locks already taken
// are released and the error names who holds the refusing hosts. Once
// settled, the locks are kept fresh until release.
func (l *locks) settle() error {
	l.mu.Lock()
	refusals, held := slices.Clone(l.refusals), slices.Clone(l.heldBy)
	l.mu.Unlock()
	if len(refusals) > 0 {
		sort.Strings(refusals)
		l.release()
		return &lockRefusal{held: held, msg: fmt.Sprintf("another run holds the lock on %d host(s); nothing was changed:\n%s\n(if that run is dead, its lock expires %s after its last heartbeat)",
			len(refusals), strings.Join(refusals, "\n"), l.times.stale())}
	}
	l.wg.Add(1)
	go l.heartbeat()
	return nil
}

// LockHeldError is one host's lock refused because another run holds it.
// A run refused so changed nothing; errors.As finds it in Run's error, so a
// caller may wait and try again (the webhook does).
type LockHeldError struct {
	Holder string        // the holder's owner text: "troupe run PLAN by USER@MACHINE pid N since TIME"
	Age    time.Duration // since the holder's last heartbeat
	Path   string        // the lock directory on the host
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("locked by %q (heartbeat %ds ago; lock %s)", e.Holder, int(e.Age.Seconds()), e.Path)
}

// LockHolder names the holder; packages that must not import runner match
// it with errors.As on an interface{ LockHolder() string }.
func (e *LockHeldError) LockHolder() string { return e.Holder }

// lockRefusal is settle's refusal: its text names every refusing host,
// and it unwraps to the LockHeldErrors among them.
type lockRefusal struct {
	msg  string
	held []error
}

func (e *lockRefusal) Error() string   { return e.msg }
func (e *lockRefusal) Unwrap() []error { return e.held }

// lockScript takes the lock: it prints "ok" and the lock's path on the next
// line when taken, "held AGE", the path and the holder's owner text when
// another run holds it, and "unsafe WHY" when the lock could be redirected.
// Arguments: the lock path ("" for the default), the owner text, the stale
// age in seconds.
const lockScript = `umask 077
l=$1 token=$2 stale=$3
if [ -z "$l" ]; then
  if [ "$(id -u)" = 0 ]; then d=/run/troupe; else d=${XDG_RUNTIME_DIR:-$HOME/.cache}/troupe; fi
  mkdir -p "$d" 2>/dev/null
  l=$d/troupe.lock
fi
d=$(dirname "$l")
if [ -L "$d" ] || [ ! -d "$d" ]; then echo "unsafe $d is not a directory"; exit; fi
set -- $(stat -c '%u %a' "$d")
if { [ "$1" != 0 ] && [ "$1" != "$(id -u)" ]; } || [ $((0$2 & 022)) -ne 0 ]; then
  echo "unsafe $d (uid $1, mode $2) is writable by others than $(id -un) and root: another user could redirect the lock"; exit
fi
if [ -L "$l" ] || { [ -e "$l" ] && [ ! -d "$l" ]; }; then echo "unsafe $l is not a lock directory"; exit; fi
if mkdir "$l" 2>/dev/null; then printf '%s\n' "$token" > "$l/owner" && printf 'ok\n%s\n' "$l"; exit; fi
age() { echo $(( $(date +%s) - $(stat -c %Y "$1/owner" 2>/dev/null || stat -c %Y "$1" 2>/dev/null || date +%s) )); }
a=$(age "$l")
if [ "$a" -gt "$stale" ]; then
  # Move the stale lock aside first: of two runs taking it over at once only
  # one moves it, and one that moved a lock just retaken puts it back.
  t=$l.stale.$$
  if mv -T "$l" "$t" 2>/dev/null; then
    if [ "$(age "$t")" -gt "$stale" ]; then
      rm -rf "$t"
      if mkdir "$l" 2>/dev/null; then printf '%s\n' "$token" > "$l/owner" && printf 'ok\n%s\n' "$l"; exit; fi
    else
      mv -T "$t" "$l" 2>/dev/null
    fi
  fi
fi
printf 'held %s\n%s\n%s\n' "$a" "$l" "$(head -c 300 "$l/owner" 2>/dev/null | tr -d '\n')"`

// lockOne takes the lock on one host and returns its path there, and the
// file operations it was taken with (nil: it was taken with lockScript).
func lockOne(ctx context.Context, c transport.Conn, path, token string, stale time.Duration) (string, transport.FileOps, error) {
	if fo := fileOps(c); fo != nil {
		if l, decided, err := lockFiles(fo, path, token, stale); decided {
			return l, fo, err
		}
	}
	l, err := lockShell(ctx, c, path, token, stale)
	return l, nil, err
}

// lockShell takes the lock with lockScript, in a session of its own.
func lockShell(ctx context.Context, c transport.Conn, path, token string, stale time.Duration) (string, error) {
	script := "sh -s -- " + render.ShellQuote(path) + " " + render.ShellQuote(token) + " " + strconv.Itoa(int(stale.Seconds()))
	res, err := c.Run(ctx, transport.Cmd{Command: script, Stdin: strings.NewReader(lockScript)})
	if err != nil {
		return "", err
	}
	out := strings.TrimSpace(res.Stdout)
	lines := append(strings.Split(out, "\n"), "", "") // a path may hold spaces, not newlines
	if lines[0] == "ok" {
		return lines[1], nil
	}
	if age, ok := strings.CutPrefix(lines[0], "held "); ok {
		secs, _ := strconv.Atoi(age)
		return "", &LockHeldError{Holder: lines[2], Age: time.Duration(secs) * time.Second, Path: lines[1]}
	}
	if rest, ok := strings.CutPrefix(out, "unsafe "); ok {
		return "", fmt.Errorf("refusing the lock: %s", rest)
	}
	return "", fmt.Errorf("cannot take the lock: %s", strings.TrimSpace(res.Stderr+out))
}

// add locks one more host during the run: a peer named only when its step
// ran (see reachLate). A refusal names who holds it.
func (l *locks) add(ctx context.Context, h *inventory.Host, c transport.Conn) error {
	path, _ := h.Vars["troupe_lock"].(string)
	path, fo, err := lockOne(ctx, c, path, l.token, l.times.stale())
	if err != nil {
		return fmt.Errorf("cannot lock %s: %w", h.Name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[h.Name] = c
	l.paths[h.Name] = path
	if fo != nil {
		l.files[h.Name] = fo
	}
	return nil
}

// heldLock is one host's lock: its connection, its directory, and its SFTP
// channel when the lock was taken over one.
type heldLock struct {
	name string
	conn transport.Conn
	path string
	fo   transport.FileOps
}

// held is a snapshot of the locks, safe from a concurrent add.
func (l *locks) held() []heldLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]heldLock, 0, len(l.conns))
	for name, c := range l.conns {
		out = append(out, heldLock{name: name, conn: c, path: l.paths[name], fo: l.files[name]})
	}
	return out
}

func (l *locks) heartbeat() {
	defer l.wg.Done()
	t := time.NewTicker(l.times.beat())
	defer t.Stop()
	for {
		select {
		case <-l.stopped.Done():
			return
		case <-t.C:
			l.beat()
		}
	}
}

// beatSlots bounds the locks refreshed at once. One after another, a beat
// over hundreds of hosts outlasts lockBeat, and the release, which waits
// for the beat under way, waits for all of it.
const beatSlots = 64

// beat refreshes every lock, beatSlots at a time, and stops starting new
// ones once the locks are being released.
func (l *locks) beat() {
	fanout.Each(l.stopped, l.held(), beatSlots, func(_ context.Context, h heldLock) error {
		// rewritten rather than given a time: SFTP would set this
		// machine's clock, a write is stamped by the host's, as touch is
		if h.fo != nil && h.fo.WriteFile(h.path+"/owner", []byte(l.token+"\n"), 0o600) == nil {
			return nil
		}
		// its own timeout, not the stop: a beat under way completes
		ctx, cancel := context.WithTimeout(context.Background(), l.times.beat())
		defer cancel()
		h.conn.Run(ctx, transport.Cmd{Command: "touch " + render.ShellQuote(h.path+"/owner")})
		return nil
	})
}

// release removes the locks this run holds (only if still ours), all at
// once: each over its host's own connection.
func (l *locks) release() {
	l.stop()
	l.wg.Wait()
	q := render.ShellQuote(l.token)
	held := l.held()
	fanout.Each(context.Background(), held, len(held), func(_ context.Context, h heldLock) error {
		if h.fo != nil && releaseFiles(h.fo, h.path, l.token) == nil {
			return nil
		}
		p := render.ShellQuote(h.path)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.conn.Run(ctx, transport.Cmd{Command: fmt.Sprintf(`[ "$(cat %s/owner 2>/dev/null)" = %s ] && rm -rf %s; true`, p, q, p)})
		return nil
	})
}
