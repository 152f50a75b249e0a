package runner

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/transport"
)

// The host lock (after k0sctl's phase/lock.go): a file created with
// noclobber, so only one run holds it, and touched every lockBeat by its
// holder. A lock whose file has not been touched for lockStale belongs to a
// run that died; it is taken over with a warning in its message.
//
// The lock lives at lockPath unless the host's var `troupe_lock` names
// another file (hosts that share a /tmp, such as many sshd on one machine).
const (
	lockPath  = "/tmp/troupe.lock"
	lockBeat  = 10 * time.Second
	lockStale = 45 * time.Second
)

type locks struct {
	conns  map[string]transport.Conn
	paths  map[string]string
	token  string
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed []string
}

// acquireLocks locks every host or none: on any refusal the locks already
// taken are released and the error names who holds the refusing host.
func acquireLocks(ctx context.Context, p *pool, hosts []*inventory.Host, planName string) (*locks, error) {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	machine, _ := os.Hostname()
	token := fmt.Sprintf("troupe run %s by %s@%s pid %d since %s", planName, who, machine, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	l := &locks{conns: map[string]transport.Conn{}, paths: map[string]string{}, token: token, stop: make(chan struct{})}
	var mu sync.Mutex
	var refusals []string
	var wg sync.WaitGroup
	for _, h := range hosts {
		c, err := p.get(ctx, h)
		if err != nil {
			return nil, err
		}
		path := lockPath
		if p, ok := h.Vars["troupe_lock"].(string); ok && p != "" {
			path = p
		}
		wg.Add(1)
		go func(name string, c transport.Conn) {
			defer wg.Done()
			err := lockOne(ctx, c, path, token)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusals = append(refusals, fmt.Sprintf("  %s: %v", name, err))
				return
			}
			l.conns[name] = c
			l.paths[name] = path
		}(h.Name, c)
	}
	wg.Wait()
	if len(refusals) > 0 {
		l.release()
		return nil, fmt.Errorf("another run holds the lock on %d host(s); nothing was changed:\n%s\n(if that run is dead, its lock expires %s after its last heartbeat)",
			len(refusals), strings.Join(refusals, "\n"), lockStale)
	}
	l.wg.Add(1)
	go l.heartbeat()
	return l, nil
}

// lockOne takes the lock on one host; the script prints "ok" when taken and
// "held AGE CONTENT" when another run holds it.
func lockOne(ctx context.Context, c transport.Conn, path, token string) error {
	q := render.ShellQuote(token)
	script := fmt.Sprintf(`f=%s
if (set -C; printf '%%s\n' %s > "$f") 2>/dev/null; then echo ok; exit; fi
age=$(( $(date +%%s) - $(stat -c %%Y "$f" 2>/dev/null || echo 0) ))
if [ "$age" -gt %d ]; then printf '%%s\n' %s > "$f" && echo "ok stale $age"; exit; fi
echo "held $age $(cat "$f")"`, render.ShellQuote(path), q, int(lockStale.Seconds()), q)
	res, err := c.Run(ctx, transport.Cmd{Command: script})
	if err != nil {
		return err
	}
	out := strings.TrimSpace(res.Stdout)
	if strings.HasPrefix(out, "ok") {
		return nil
	}
	if rest, ok := strings.CutPrefix(out, "held "); ok {
		age, holder, _ := strings.Cut(rest, " ")
		secs, _ := strconv.Atoi(age)
		return fmt.Errorf("locked by %q (heartbeat %ds ago; lock file %s)", holder, secs, path)
	}
	return fmt.Errorf("cannot take lock %s: %s", path, strings.TrimSpace(res.Stderr+out))
}

func (l *locks) heartbeat() {
	defer l.wg.Done()
	t := time.NewTicker(lockBeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			for name, c := range l.conns {
				ctx, cancel := context.WithTimeout(context.Background(), lockBeat)
				c.Run(ctx, transport.Cmd{Command: "touch " + render.ShellQuote(l.paths[name])})
				cancel()
			}
		}
	}
}

// release removes the locks this run holds (only if still ours).
func (l *locks) release() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	q := render.ShellQuote(l.token)
	var wg sync.WaitGroup
	for name, c := range l.conns {
		p := render.ShellQuote(l.paths[name])
		wg.Add(1)
		go func(c transport.Conn) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.Run(ctx, transport.Cmd{Command: fmt.Sprintf(`[ "$(cat %s 2>/dev/null)" = %s ] && rm -f %s; true`, p, q, p)})
		}(c)
	}
	wg.Wait()
}
