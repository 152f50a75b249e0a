package step

import (
	"context"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/transport"
)

// aptHost is an apt host whose /usr/sbin/policy-rc.d is policy: "" (none),
// "ours" (troupe's) or "theirs" (the operator's). installFails makes the
// install exit 100; heldAtInstall records what policy-rc.d was while apt ran.
type aptHost struct {
	*fakeConn
	policy        string
	installFails  bool
	heldAtInstall string
}

func newAptHost() *aptHost {
	h := &aptHost{fakeConn: newFake()}
	h.reply("command -v apt-get", "apt\n")
	h.on("echo ours; else echo theirs", func(string) transport.Result {
		return transport.Result{Stdout: map[string]string{"": "none", "ours": "ours", "theirs": "theirs"}[h.policy] + "\n"}
	})
	h.on("mktemp /usr/sbin/.policy-rc.d.troupe.", func(cmd string) transport.Result {
		if !strings.Contains(cmd, "exit 101") || !strings.Contains(cmd, `ln "$t" /usr/sbin/policy-rc.d;`) {
			return transport.Result{ExitCode: 1, Stderr: "unexpected script"}
		}
		if h.policy != "" {
			return transport.Result{ExitCode: 1, Stderr: "ln: failed to create hard link: File exists"}
		}
		h.policy = "ours"
		return transport.Result{}
	})
	h.on("then rm -f /usr/sbin/policy-rc.d", func(string) transport.Result {
		if h.policy == "ours" {
			h.policy = ""
		}
		return transport.Result{}
	})
	h.on("apt-get -q -y", func(string) transport.Result {
		h.heldAtInstall = h.policy
		if h.installFails {
			return transport.Result{ExitCode: 100, Stderr: "E: Sub-process /usr/bin/dpkg returned an error code (1)"}
		}
		return transport.Result{}
	})
	return h
}

// order is the index in the commands run of the first one containing each
// string, -1 when none does.
func (h *aptHost) order(subs ...string) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int, len(subs))
	for i, s := range subs {
		out[i] = -1
		for j, c := range h.ran {
			if strings.Contains(c, s) {
				out[i] = j
				break
			}
		}
	}
	return out
}

const (
	writePolicy  = "mktemp /usr/sbin/.policy-rc.d.troupe."
	installCmd   = " install --allow-downgrades puppetserver"
	removePolicy = "then rm -f /usr/sbin/policy-rc.d"
)

func runPackage(t *testing.T, h *aptHost, p *Package) (Result, error) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h.fakeConn}}
	return p.Run(context.Background(), s.exec(t, "c"))
}

// policy-rc.d is written before the install, held while apt runs, and
// removed after it.
func TestPackageHoldRestarts(t *testing.T) {
	h := newAptHost()
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	o := h.order(writePolicy, installCmd, removePolicy)
	if o[0] < 0 || o[1] <= o[0] || o[2] <= o[1] {
		t.Errorf("write, install, remove at %v: %q", o, h.ran)
	}
	if h.heldAtInstall != "ours" || h.policy != "" {
		t.Errorf("policy-rc.d during the install %q, after %q", h.heldAtInstall, h.policy)
	}
	if !strings.Contains(res.Msg, "restarts held") {
		t.Errorf("msg %q", res.Msg)
	}
	// the control: without hold_restarts nothing is written
	h = newAptHost()
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}}); err != nil {
		t.Fatal(err)
	}
	if o := h.order(writePolicy, installCmd, removePolicy); o[0] != -1 || o[2] != -1 || o[1] < 0 {
		t.Errorf("without hold_restarts: %v", o)
	}
}

// A failed install removes it too, and the step fails with apt's error.
func TestPackageHoldRestartsInstallFails(t *testing.T) {
	h := newAptHost()
	h.installFails = true
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err == nil || !strings.Contains(err.Error(), "dpkg returned an error") {
		t.Fatalf("%v", err)
	}
	if o := h.order(writePolicy, installCmd, removePolicy); o[0] < 0 || o[1] <= o[0] || o[2] <= o[1] {
		t.Errorf("write, install, remove at %v", o)
	}
	if h.heldAtInstall != "ours" || h.policy != "" {
		t.Errorf("policy-rc.d during the install %q, after %q", h.heldAtInstall, h.policy)
	}
}

// The operator's own policy-rc.d is neither replaced nor removed; the
// install still runs, and the step says restarts were not held. One left
// by a troupe run that died is taken over and removed.
func TestPackageHoldRestartsExisting(t *testing.T) {
	h := newAptHost()
	h.policy = "theirs"
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "host's own: kept") {
		t.Fatalf("%+v %v", res, err)
	}
	if o := h.order(writePolicy, installCmd, removePolicy); o[0] != -1 || o[2] != -1 || o[1] < 0 {
		t.Errorf("theirs touched or install not run: %v", o)
	}
	if h.policy != "theirs" {
		t.Errorf("policy-rc.d now %q", h.policy)
	}

	h = newAptHost()
	h.policy = "ours"
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true}); err != nil {
		t.Fatal(err)
	}
	if h.heldAtInstall != "ours" || h.policy != "" {
		t.Errorf("stale troupe policy-rc.d: during %q, after %q", h.heldAtInstall, h.policy)
	}
}

// Nothing to install: nothing written.
func TestPackageHoldRestartsNothingToDo(t *testing.T) {
	h := newAptHost()
	h.reply("dpkg-query -W", "puppetserver 8.4.0-1 ii\n")
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err != nil || res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	if o := h.order(writePolicy, removePolicy); o[0] != -1 || o[1] != -1 {
		t.Errorf("%v", o)
	}
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
	hosts := map[string]*aptHost{"ca": newAptHost(), "c1": newAptHost(), "db": newAptHost(), "agent": newAptHost()}
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
	h := newAptHost()
	h.rules = append([]fakeRule{{removePolicy, func(string) transport.Result {
		return transport.Result{ExitCode: 1, Stderr: "rm: cannot remove '/usr/sbin/policy-rc.d': Read-only file system"}
	}}}, h.rules...)
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err == nil || !strings.Contains(err.Error(), "/usr/sbin/policy-rc.d not removed") || !strings.Contains(err.Error(), "Read-only") {
		t.Fatalf("%v", err)
	}
}
