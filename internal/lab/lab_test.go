package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/testenv"
)

// TestMain: the lab's HTTP server is this test binary re-executed (see
// MaybeServe), so it must get the chance to serve before tests run.
func TestMain(m *testing.M) {
	MaybeServe()
	os.Exit(m.Run())
}

// The real-lab tests need Linux and root (namespaces, mounts, a bridge). CI
// runs as root, so CI runs them. The first run builds the cache
// (/var/cache/troupe-lab, several minutes); later runs take seconds.
// TROUPE_LAB_TEST_SUITE=trixie tests the other suite.
func needLab(t *testing.T) Spec {
	t.Helper()
	if runtime.GOOS != "linux" {
		testenv.Skip(t, "lab tests need Linux (namespaces, overlayfs)")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "lab tests need root (namespaces, mounts, bridge); run `go test` as root")
	}
	if testing.Short() {
		testenv.Skip(t, "lab tests are long; skipped with -short")
	}
	if err := CheckHost(); err != nil {
		testenv.Skip(t, err)
	}
	// Own subnet and bridge, so the tests run beside a developer's lab.
	return Spec{Suite: os.Getenv("TROUPE_LAB_TEST_SUITE"), WorkDir: filepath.Join(t.TempDir(), "work"),
		Subnet: "10.77.9", Bridge: "labt0"}
}

func TestLabUpSSHRepoDown(t *testing.T) {
	s := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logw := testLog{t}
	t0 := time.Now()
	l, err := Up(ctx, s, logw)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up took %s", time.Since(t0))
	downDone := false
	defer func() {
		if !downDone {
			Down(context.Background(), l.WorkDir, logw)
		}
	}()

	// Idempotent: a second Up with the same spec returns the running lab.
	l2, err := Up(ctx, s, logw)
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if l2.Hosts[0].Address != l.Hosts[0].Address {
		t.Fatalf("second up returned another lab")
	}

	wantShort := []string{"ca", "compile1", "compile2", "lb", "puppetdb", "agent1"}
	if len(l.Hosts) != len(wantShort) {
		t.Fatalf("hosts: %+v", l.Hosts)
	}
	for i, h := range l.Hosts {
		if h.Short != wantShort[i] || h.Name != h.Short+".lab.test" {
			t.Errorf("host %d = %+v, want %s", i, h, wantShort[i])
		}
	}
	inv, _ := os.ReadFile(l.Inventory)
	for _, want := range []string{"version: 1", "host_key_check: strict", "{name: lb.lab.test, address: 10.77.9.20, aliases: [lb, puppet.lab.test, puppet]}",
		`package_repo: "deb [trusted=yes] http://10.77.9.1:8800/debian ./"`, "control_repo: http://10.77.9.1:8800/control.git"} {
		if !strings.Contains(string(inv), want) {
			t.Errorf("inventory lacks %q:\n%s", want, inv)
		}
	}

	// Every host, as root and as lab (+ sudo), with strict host key checking
	// against the written known_hosts, by IP and by name.
	for _, h := range l.Hosts {
		out := sshOut(t, l, "root", h.Address, "hostname; id -u; cat /etc/hosts; ip route; cat /etc/resolv.conf; cat /etc/apt/sources.list")
		if !strings.HasPrefix(out, h.Short+"\n0\n") {
			t.Errorf("%s: hostname/id: %q", h.Short, out)
		}
		for _, o := range l.Hosts {
			if !strings.Contains(out, o.Address+"\t"+o.Name+" "+o.Short) {
				t.Errorf("%s: /etc/hosts lacks %s", h.Short, o.Name)
			}
		}
		if !strings.Contains(out, "puppet.lab.test puppet") {
			t.Errorf("%s: /etc/hosts lacks puppet alias", h.Short)
		}
		if strings.Contains(out, "default") || strings.Contains(out, "nameserver") {
			t.Errorf("%s: has a default route or a nameserver:\n%s", h.Short, out)
		}
		if out := sshOut(t, l, "lab", h.Name, "id -un; sudo -n true && echo SUDO-OK; sudo -n sh -c 'echo $PATH'; command -v systemctl"); !strings.Contains(out, "lab\nSUDO-OK\n/usr/local/sbin:/usr/local/bin") ||
			!strings.Contains(out, "\n/usr/bin/systemctl\n") {
			t.Errorf("%s: lab/sudo: %q", h.Short, out)
		}
		// systemd is the host's PID 1 and has finished booting, nothing failed.
		if out := sshOut(t, l, "root", h.Address, "cat /proc/1/comm; systemctl is-system-running --wait; systemctl --failed --plain --no-legend"); out != "systemd\nrunning\n" {
			t.Errorf("%s: PID 1 / is-system-running / failed units: %q", h.Short, out)
		}
		// troupe stages sudo uploads under ~/.cache: the home must be the user's
		if out := sshOut(t, l, "lab", h.Name, "stat -c %U /home/lab && mkdir -p ~/.cache && echo HOME-OK"); out != "lab\nHOME-OK\n" {
			t.Errorf("%s: /home/lab not writable by lab: %q", h.Short, out)
		}
	}
	// No way out of the subnet: no route to the mirror, nor to the runner's other addresses.
	if out, err := sshRun(l, "root", "agent1", "ip route get 1.1.1.1 2>&1; curl -sS -m 3 -o /dev/null http://deb.debian.org/ 2>&1"); err == nil {
		t.Errorf("agent1 reached outside the lab: %s", out)
	} else if !strings.Contains(out, "unreachable") {
		t.Errorf("agent1: unexpected: %s", out)
	}

	// Local package repository: install haproxy and git from it, clone the control repo.
	out, err := sshRun(l, "lab", "lb", "sudo -n apt-get update -q && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy git && "+
		"git clone -q -b development "+l.ControlRepoURL+" /tmp/ctl && cat /tmp/ctl/manifests/site.pp | head -1 && git -C /tmp/ctl branch -r && "+
		"sudo -n systemctl start haproxy && echo A1=$(systemctl is-active haproxy) && sudo -n systemctl stop haproxy; systemctl is-active haproxy; echo rc=$?; pgrep -c haproxy; true")
	if err != nil {
		t.Fatalf("apt install / clone on lb: %v\n%s", err, out)
	}
	for _, want := range []string{"branch: development", "origin/production", "A1=active\ninactive\nrc=3\n0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("lb apt/git/systemctl output lacks %q:\n%s", want, out)
		}
	}
	// The upgrade repository has the bumped packages.
	if out, err := exec.Command("curl", "-sf", l.UpgradeRepoURL+"/Packages").Output(); err != nil || !strings.Contains(string(out), upgradeSuffix) {
		t.Errorf("upgrade repo: %v %s", err, out)
	}

	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st {
		t.Logf("status %-10s %-12s pid1=%d %s procs=%d rss=%.1fMiB pss=%.1fMiB %v", h.Short, h.Address, h.InitPID, h.System, h.Procs, h.RSSMiB, h.PSSMiB, h.Services)
		if !h.Running || h.Procs < 2 || h.RSSMiB <= 0 || !contains(h.Services, "sshd") || h.System != "running" || len(h.Failed) > 0 {
			t.Errorf("status %s: %+v", h.Short, h)
		}
	}

	// SSHCommand by short name.
	if out, err := l.SSHCommand("puppet", "hostname").Output(); err != nil || strings.TrimSpace(string(out)) != "lb" {
		t.Errorf("SSHCommand(puppet): %v %q", err, out)
	}

	// A host that hangs in its shutdown (a unit that ignores SIGTERM and
	// that systemd waits for without end) is killed after the bound.
	if out, err := sshRun(l, "root", "agent1", `printf '[Service]\nExecStart=/bin/sh -c "trap \\"\\" TERM; while :; do sleep 1; done"\nTimeoutStopSec=infinity\n' >/etc/systemd/system/hang.service && systemctl daemon-reload && systemctl start hang && systemctl is-active hang`); err != nil || strings.TrimSpace(out) != "active" {
		t.Fatalf("hang.service on agent1: %v %q", err, out)
	}
	defer func(b time.Duration) { shutdownBound = b }(shutdownBound)
	shutdownBound = 5 * time.Second

	// Remember what must be gone after Down.
	var nss []string
	for _, h := range l.Hosts {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", l.initPID(h)))
		nss = append(nss, ns)
	}
	serverPID := readPID(serverPIDFile(l.WorkDir))

	t1 := time.Now()
	if err := Down(ctx, l.WorkDir, logw); err != nil {
		t.Fatal(err)
	}
	downDone = true
	t.Logf("down took %s (agent1 killed after the %s bound)", time.Since(t1), shutdownBound)
	if time.Since(t1) < shutdownBound {
		t.Errorf("down took %s: agent1's hanging shutdown was not waited for", time.Since(t1))
	}
	assertNothingLeft(t, l.Spec.Bridge, l.WorkDir, nss, serverPID)
	if err := Down(ctx, l.WorkDir, logw); err != nil {
		t.Fatalf("second down: %v", err)
	}
	if _, err := Load(l.WorkDir); err == nil {
		t.Error("Load after down succeeded")
	}
}

func assertNothingLeft(t *testing.T, bridge, workDir string, nss []string, serverPID int) {
	t.Helper()
	for _, p := range allPIDs() {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p))
		if err == nil && contains(nss, ns) {
			t.Errorf("process %d (%s) still in a lab pid namespace", p, procCmdline(p))
		}
		if strings.Contains(procCmdline(p), workDir+"/") {
			t.Errorf("process %d still refers to the work dir: %s", p, procCmdline(p))
		}
	}
	if procAlive(serverPID) {
		t.Errorf("server %d still alive", serverPID)
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, e := range links {
		if e.Name() == bridge || strings.HasPrefix(e.Name(), bridge+"-") {
			t.Errorf("link %s left behind", e.Name())
		}
	}
	for _, d := range []string{"/run/netns", "/run/systemd/nspawn/propagate"} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), bridge+"-") {
				t.Errorf("%s/%s left behind", d, e.Name())
			}
		}
	}
	if m := mountsUnder(workDir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	ents, _ := os.ReadDir(workDir)
	for _, e := range ents {
		if e.Name() != "lock" {
			t.Errorf("left in work dir: %s", e.Name())
		}
	}
}

// A second Up while one holds the WorkDir lock is refused at once, and Down
// after a failed Up leaves nothing behind.
func TestConcurrentUpRefusedAndDownAfterFailedUp(t *testing.T) {
	s := needLab(t)
	unlock, err := lockWorkDir(s.WorkDir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Up(context.Background(), s, testLog{t})
	if err == nil || !strings.Contains(err.Error(), "another `troupe lab up` or `down` is running") {
		t.Fatalf("concurrent up: got %v", err)
	}
	if err := Down(context.Background(), s.WorkDir, testLog{t}); err == nil {
		t.Fatal("down while locked succeeded")
	}
	unlock()

	// A failed up: a lab state whose hosts never came up (simulates a crash
	// after the bridge was made); down must clean it.
	s = s.Defaults()
	l := newLab(s)
	if err := l.save(); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), nil, "ip", "link", "add", s.Bridge, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := Down(context.Background(), s.WorkDir, testLog{t}); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, s.Bridge, s.WorkDir, nil, 0)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sshRun(l *Lab, user, host, command string) (string, error) {
	h, _ := l.Host(host)
	args := append(sshOptions(l), "-o", "BatchMode=yes", user+"@"+host, command)
	cmd := exec.Command("ssh", args...)
	// resolve lab names for ssh(1) on the runner: HostName is the address,
	// HostKeyAlias keeps checking the key under the name we asked for.
	if host != h.Address {
		args = append(sshOptions(l), "-o", "BatchMode=yes", "-o", "HostKeyAlias="+host, "-o", "HostName="+h.Address, user+"@"+host, command)
		cmd = exec.Command("ssh", args...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sshOut(t *testing.T, l *Lab, user, host, command string) string {
	t.Helper()
	out, err := sshRun(l, user, host, command)
	if err != nil {
		t.Fatalf("ssh %s@%s: %v\n%s", user, host, err, out)
	}
	return out
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
