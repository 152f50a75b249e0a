package status

// Against Debian's real sshd (sshtest.StartOpenSSH; skipped unless root with
// openssh-server installed): one connection and one session per host, the
// hosts read in parallel, and nothing written on the host, watched with
// strace on sshd and everything it forks.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	trace := startStrace(t, filepath.Join(o.Dir, "sshd.pid"))

	var dials, runs atomic.Int32
	var mu sync.Mutex
	var spans [][2]time.Time
	const delay = time.Second
	site, err := Collect(context.Background(), in, Options{Timeout: 20 * time.Second, Dial: func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
		dials.Add(1)
		c, err := transport.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return counting{Conn: c, runs: &runs, delay: delay, mu: &mu, spans: &spans}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	written, seen := trace()

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
	if seen != "" && !strings.Contains(seen, `"/var/lib/dpkg/status"`) {
		t.Errorf("strace did not see dpkg-query read its database: did it follow the sessions?\n%s", seen)
	}
	if len(written) > 0 {
		t.Errorf("written on the host:\n%s", strings.Join(written, "\n"))
	}
}

// writeCall matches strace lines of calls that change the file system.
var writeCall = regexp.MustCompile(`^(\d+)\s+(openat\(.*O_(WRONLY|RDWR|CREAT).*|(mkdir|mkdirat|unlink|unlinkat|rename|renameat2?|rmdir|truncate|ftruncate|link|linkat|symlink|symlinkat|chmod|fchmodat|chown|fchownat|utimensat)\(.*)$`)

// harmless are the only writes seen (strace on Debian 12's OpenSSH 9.2 and
// sudo): /dev/null, and sshd setting its children's OOM score.
var harmless = regexp.MustCompile(`"/dev/null"|"/proc/self/oom_score_adj"`)

// startStrace follows sshd (pidfile) and all it forks, recording successful
// calls that write; stop returns those not known harmless, and the whole
// trace.
func startStrace(t *testing.T, pidfile string) (stop func() (written []string, seen string)) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Log("no strace: the host-side write check is skipped")
		return func() ([]string, string) { return nil, "" }
	}
	var pid string
	for i := 0; i < 50 && pid == ""; i++ {
		b, _ := os.ReadFile(pidfile)
		pid = strings.TrimSpace(string(b))
		if pid == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pid == "" {
		t.Fatalf("no sshd pid in %s", pidfile)
	}
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command("strace", "-f", "-qq", "-z", "-o", out, "-p", pid,
		"-e", "trace=openat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,rmdir,truncate,ftruncate,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,utimensat")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // attached
	var once sync.Once
	var lines []string
	var seen string
	return func() ([]string, string) {
		once.Do(func() {
			time.Sleep(300 * time.Millisecond) // the sessions' last calls
			_ = cmd.Process.Signal(syscall.SIGINT)
			_ = cmd.Wait()
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			seen = string(b)
			for _, l := range strings.Split(seen, "\n") {
				switch {
				case !writeCall.MatchString(l):
				case harmless.MatchString(l):
					t.Logf("harmless: %s", l)
				default:
					lines = append(lines, l)
				}
			}
		})
		return lines, seen
	}
}
