package step

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

// aptHost is an apt host whose /usr/sbin/policy-rc.d is policy: "" (none),
// "ours" (troupe's) or "theirs" (the operator's). installFails makes the
// install exit 100; heldAtInstall records what policy-rc.d was while apt ran.
// Nothing is installed unless a test answers dpkg-query.
type aptHost struct {
	*fakeConn
	mu            sync.Mutex
	policy        string
	installFails  bool
	heldAtInstall string
}

func newAptHost(t *testing.T) *aptHost {
	h := &aptHost{fakeConn: newFake(t)}
	h.reply("command -v apt-get", "apt\n")
	h.reply("dpkg-query -W", "")
	h.on("echo ours; else echo theirs", func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		return transport.Result{Stdout: map[string]string{"": "none", "ours": "ours", "theirs": "theirs"}[h.policy] + "\n"}
	})
	h.on(writePolicy, func(cmd string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !strings.Contains(cmd, "exit 101") || !strings.Contains(cmd, `ln "$t" /usr/sbin/policy-rc.d;`) {
			return transport.Result{ExitCode: 1, Stderr: "unexpected script"}
		}
		if h.policy != "" {
			return transport.Result{ExitCode: 1, Stderr: "ln: failed to create hard link: File exists"}
		}
		h.policy = "ours"
		return transport.Result{}
	})
	h.on(removePolicy, func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.policy == "ours" {
			h.policy = ""
		}
		return transport.Result{}
	})
	h.on(aptGet+" install ", func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.heldAtInstall = h.policy
		if h.installFails {
			return transport.Result{ExitCode: 100, Stderr: "E: Sub-process /usr/bin/dpkg returned an error code (1)"}
		}
		return transport.Result{}
	})
	return h
}

// state is policy-rc.d while apt ran and now.
func (h *aptHost) state() (atInstall, now string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heldAtInstall, h.policy
}

const (
	writePolicy  = "mktemp /usr/sbin/.policy-rc.d.troupe."
	installCmd   = " install --allow-downgrades puppetserver"
	removePolicy = "then rm -f /usr/sbin/policy-rc.d"
)

func runPackage(t *testing.T, h *aptHost, p *Package) (Result, error) {
	t.Helper()
	return runPackageOn(t, h.fakeConn, false, p)
}

// runPackageOn runs p on c (noop or not) and returns what it gave.
func runPackageOn(t *testing.T, c *fakeConn, noop bool, p *Package) (Result, error) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"c": c}, noop: noop}
	return p.Run(context.Background(), s.exec(t, "c"))
}

var (
	anyPolicy = transporttest.Contains("/usr/sbin/policy-rc.d")
)

// policy-rc.d is written before the install, held while apt runs, and
// removed after it.
func TestPackageHoldRestarts(t *testing.T) {
	h := newAptHost(t)
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	h.InOrder(t, transporttest.Contains(writePolicy), transporttest.Contains(installCmd), transporttest.Contains(removePolicy))
	if during, after := h.state(); during != "ours" || after != "" {
		t.Errorf("policy-rc.d during the install %q, after %q", during, after)
	}
	if !strings.Contains(res.Msg, "restarts held") {
		t.Errorf("msg %q", res.Msg)
	}
	// the control: without hold_restarts nothing is written
	h = newAptHost(t)
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}}); err != nil {
		t.Fatal(err)
	}
	h.Received(t, transporttest.Contains(installCmd))
	h.NotReceived(t, anyPolicy)
}

// A failed install removes it too, and the step fails with apt's error.
func TestPackageHoldRestartsInstallFails(t *testing.T) {
	h := newAptHost(t)
	h.installFails = true
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err == nil || !strings.Contains(err.Error(), "dpkg returned an error") {
		t.Fatalf("%v", err)
	}
	h.InOrder(t, transporttest.Contains(writePolicy), transporttest.Contains(installCmd), transporttest.Contains(removePolicy))
	if during, after := h.state(); during != "ours" || after != "" {
		t.Errorf("policy-rc.d during the install %q, after %q", during, after)
	}
}

// The operator's own policy-rc.d is neither replaced nor removed; the
// install still runs, and the step says restarts were not held. One left
// by a troupe run that died is taken over and removed.
func TestPackageHoldRestartsExisting(t *testing.T) {
	h := newAptHost(t)
	h.policy = "theirs"
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "host's own: kept") {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Contains(installCmd))
	h.NotReceived(t, transporttest.Contains(writePolicy))
	h.NotReceived(t, transporttest.Contains(removePolicy))
	if _, after := h.state(); after != "theirs" {
		t.Errorf("policy-rc.d now %q", after)
	}

	h = newAptHost(t)
	h.policy = "ours"
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true}); err != nil {
		t.Fatal(err)
	}
	h.NotReceived(t, transporttest.Contains(writePolicy))
	if during, after := h.state(); during != "ours" || after != "" {
		t.Errorf("stale troupe policy-rc.d: during %q, after %q", during, after)
	}
}

// Nothing to install: nothing written.
func TestPackageHoldRestartsNothingToDo(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "puppetserver 8.4.0-1 ii\n")
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	h.NotReceived(t, anyPolicy)
	if err := (&Package{Names: []string{"x"}, State: "absent", HoldRestarts: true}).Validate(); err == nil {
		t.Error("hold_restarts with absent accepted")
	}
}

// for_groups: each host installs the lists of the groups it is in, besides
// names; an empty name (a flavor without that package) is left out, a
// repeat once.
func TestPackageForGroups(t *testing.T) {
	p := &Package{Names: []string{"curl"}, ForGroups: map[string][]string{
		"compilers": {"{{ .flavor.packages.server }}", "git", `{{ if false }}r10k{{ end }}`},
		"ca":        {"{{ .flavor.packages.server }}", "git"},
		"puppetdb":  {"postgresql", "curl"},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*aptHost{"ca": newAptHost(t), "c1": newAptHost(t), "db": newAptHost(t), "agent": newAptHost(t)}
	s := &fakeSite{hosts: map[string]*fakeConn{}, groups: map[string][]string{
		"ca": {"ca"}, "compilers": {"c1", "ca"}, "puppetdb": {"db"}, "agents": {"agent"},
	}}
	for n, h := range hosts {
		s.hosts[n] = h.fakeConn
	}
	want := map[string]string{
		"ca":    " install --allow-downgrades curl puppetserver git",
		"c1":    " install --allow-downgrades curl puppetserver git",
		"db":    " install --allow-downgrades curl postgresql",
		"agent": " install --allow-downgrades curl",
	}
	for n, h := range hosts {
		if _, err := p.Run(context.Background(), s.exec(t, n)); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		got := h.ranMatching(" install ")
		if len(got) != 1 || !strings.HasSuffix(got[0], want[n]) {
			t.Errorf("%s: %q, want …%s", n, got, want[n])
		}
	}
	if err := (&Package{}).Validate(); err == nil {
		t.Error("no names and no for_groups accepted")
	}
}

// A removal that fails fails the step, saying what is left behind.
func TestPackageHoldRestartsRemovalFails(t *testing.T) {
	h := newAptHost(t)
	h.Fail(transporttest.Contains(removePolicy), 1, "rm: cannot remove '/usr/sbin/policy-rc.d': Read-only file system")
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err == nil || !strings.Contains(err.Error(), "/usr/sbin/policy-rc.d not removed") || !strings.Contains(err.Error(), "Read-only") {
		t.Fatalf("%v", err)
	}
}
