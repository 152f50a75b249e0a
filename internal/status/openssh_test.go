package status

// Against Debian's real sshd (sshtest.StartOpenSSH; skipped unless root with
// openssh-server installed): one connection and one session per host, the
// hosts read in parallel, and nothing written on the host, watched with
// strace on sshd and everything it forks.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// counting wraps a Conn: Runs are counted and each is delayed, so parallel
// hosts show in the wall time.
type counting struct {
	transport.Conn
	runs  *atomic.Int32
	delay time.Duration
	mu    *sync.Mutex
	spans *[][2]time.Time // each Run's start and end
}

func (c counting) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	c.runs.Add(1)
	start := time.Now()
	time.Sleep(c.delay)
	res, err := c.Conn.Run(ctx, cmd)
	c.mu.Lock()
	*c.spans = append(*c.spans, [2]time.Time{start, time.Now()})
	c.mu.Unlock()
	return res, err
}

func TestOpenSSHOneConnectionParallelReadOnly(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	hosts := []string{"compile-a.test", "compile-b.test", "agent-x.test"}
	y := fmt.Sprintf(`version: 1
vars: {flavor: debian}
config:
  ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s, sudo: true}
groups:
  compilers: {targets: [{name: %s, address: 127.0.0.1}, {name: %s, address: 127.0.0.1}]}
  agents: {targets: [{name: %s, address: 127.0.0.1}]}
`, sshtest.TestUser, o.Port, o.KeyFile, o.KnownHosts, hosts[0], hosts[1], hosts[2])
	if err := os.WriteFile(inv, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := inventory.Load(inv)
	if err != nil {
		t.Fatal(err)
	}
	var dials, runs atomic.Int32
	var mu sync.Mutex
	var spans [][2]time.Time
	const delay = time.Second
	var site *Site
	tr, err := sshtest.TraceSSHD(context.Background(), runHere, sshdPID(t, filepath.Join(o.Dir, "sshd.pid")), func() error {
		var err error
		site, err = Collect(context.Background(), in, Options{Timeout: 20 * time.Second, Dial: func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
			dials.Add(1)
			c, err := transport.Dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return counting{Conn: c, runs: &runs, delay: delay, mu: &mu, spans: &spans}, nil
		}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if dials.Load() != 3 || runs.Load() != 3 {
		t.Errorf("%d dials and %d runs for 3 hosts, want one each", dials.Load(), runs.Load())
	}
	// in parallel: every host's run began before any ended
	var lastStart, firstEnd time.Time
	for _, sp := range spans {
		if sp[0].After(lastStart) {
			lastStart = sp[0]
		}
		if firstEnd.IsZero() || sp[1].Before(firstEnd) {
			firstEnd = sp[1]
		}
	}
	if len(spans) != 3 || !lastStart.Before(firstEnd) {
		t.Errorf("runs not in parallel: %v", spans)
	}
	log, _ := os.ReadFile(o.Log)
	if n := strings.Count(string(log), "Accepted publickey for "+sshtest.TestUser); n != 3 {
		t.Errorf("sshd accepted %d connections, want 3:\n%s", n, log)
	}
	for _, h := range site.Hosts {
		if h.Error != "" {
			t.Errorf("%s: %s", h.Name, h.Error)
		}
		// the script ran to its end: every section answered (with this
		// machine's own failures: no Puppet here)
		if pkg, ok := h.secs["pkg"]; !ok || !pkg.Done {
			t.Errorf("%s: no package answer: %+v", h.Name, h.secs)
		}
		if h.Cert == nil || h.Cert.Error == "" {
			t.Errorf("%s: cert %+v", h.Name, h.Cert)
		}
	}
	if site.Healthy {
		t.Error("a site without Puppet judged healthy")
	}
	// the positive control: the trace saw the probes themselves, in every
	// session (a trace that sees nothing would find no write either)
	if n := count(tr.Execs, "/usr/bin/dpkg-query"); n != 3 {
		t.Errorf("strace saw %d execs of dpkg-query, want one a host: did it follow the sessions?\n%v", n, tr.Execs)
	}
	if count(tr.Execs, "/usr/bin/sudo") < 3 || !strings.Contains(tr.Raw, `"/var/lib/dpkg/status"`) {
		t.Errorf("strace did not see sudo start or dpkg-query read its database:\n%v", tr.Execs)
	}
	if len(tr.Writes) > 0 {
		t.Errorf("written on the host:\n%s", strings.Join(tr.Writes, "\n"))
	}
	t.Logf("%d programs started, none wrote: %v", len(tr.Execs), tr.Execs)
}

func count(xs []string, x string) int {
	n := 0
	for _, s := range xs {
		if s == x {
			n++
		}
	}
	return n
}

// runHere runs a command on this machine, the host of the test's sshd.
func runHere(ctx context.Context, command string) (string, error) {
	out, err := exec.CommandContext(ctx, "sh", "-c", command).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return string(out), err
}

// sshdPID reads sshd's pidfile, waiting for sshd to write it.
func sshdPID(t *testing.T, pidfile string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sshd pid in %s", pidfile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
