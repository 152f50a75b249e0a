package step

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/report"
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
	anyInstall = transporttest.Contains(" install ")
	anyRemove  = transporttest.Contains(" remove ")
	anyPolicy  = transporttest.Contains("/usr/sbin/policy-rc.d")
	anyAptGet  = transporttest.HasPrefix("DEBIAN_FRONTEND=noninteractive apt-get ")
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
	// a host in none of the groups and no names: nothing asked of it
	h := newFake(t)
	res, err := (&Package{ForGroups: map[string][]string{"puppetdb": {"postgresql"}}}).Run(context.Background(), (&fakeSite{hosts: map[string]*fakeConn{"x": h}}).exec(t, "x"))
	if err != nil || res.Changed || len(h.ran()) != 0 {
		t.Errorf("%+v %v %q", res, err, h.ran())
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

// policy-rc.d cannot be put in place (another appeared meanwhile): the
// step fails before apt runs; an answer the probe cannot read fails it too.
func TestPackageHoldRestartsWriteFails(t *testing.T) {
	h := newAptHost(t)
	h.Fail(transporttest.Contains(writePolicy), 1, "ln: failed to create hard link '/usr/sbin/policy-rc.d': File exists")
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true})
	if err == nil || !strings.Contains(err.Error(), "hold_restarts: write /usr/sbin/policy-rc.d") || !strings.Contains(err.Error(), "File exists") {
		t.Fatalf("%v", err)
	}
	h.NotReceived(t, anyInstall)
	h.NotReceived(t, transporttest.Contains(removePolicy))

	h = newAptHost(t)
	h.reply("echo ours; else echo theirs", "sudo: a password is required\n")
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, HoldRestarts: true}); err == nil || !strings.Contains(err.Error(), "unexpected answer") {
		t.Fatalf("%v", err)
	}
	h.NotReceived(t, anyInstall)
}

// present installs what is missing (a package removed with its config
// left, dpkg's "rc", is missing), in one apt-get call, and only that.
func TestPackagePresent(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "curl 7.88.1-10 ii\nvim 2:9.0.1378-2 rc\n")
	res, err := runPackage(t, h, &Package{Names: []string{"curl", "vim", "git"}})
	if err != nil || !res.Changed || res.Msg != "vim git" {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.HasPrefix("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' curl vim git 2>/dev/null"))
	h.ReceivedN(t, anyInstall, 1)
	h.Received(t, transporttest.Equal(aptGet+" install --allow-downgrades vim git"))

	// everything there: no change, no apt-get
	h = newAptHost(t)
	h.reply("dpkg-query -W", "curl 7.88.1-10 ii\nvim 2:9.0.1378-2 ii\n")
	res, err = runPackage(t, h, &Package{Names: []string{"curl", "vim"}})
	if err != nil || res.Changed || res.Msg != "already present" {
		t.Fatalf("%+v %v", res, err)
	}
	h.NotReceived(t, anyAptGet)
}

// version pins every name, versions single ones (keys and values are
// templates; an empty value leaves the name to version); a pinned name is
// installed when its version differs, apt's way name=version.
func TestPackageVersions(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "puppetserver 8.4.0-1bookworm ii\npuppet-agent 8.4.0-1bookworm ii\nopenvoxdb-termini 8.1.0-1bookworm ii\n")
	p := &Package{
		Names:   []string{"puppetserver", "puppet-agent", "openvoxdb-termini"},
		Version: "8.4.0-1bookworm",
		Versions: map[string]string{
			"{{ .vars.termini }}": "{{ .vars.db_version }}",
			"puppet-agent":        "{{ .vars.unset }}",
		},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h.fakeConn}}
	x := s.exec(t, "c")
	x.Data["vars"] = map[string]any{"termini": "openvoxdb-termini", "db_version": "8.2.0-1bookworm", "unset": ""}
	res, err := p.Run(context.Background(), x)
	if err != nil || !res.Changed || res.Msg != "openvoxdb-termini=8.2.0-1bookworm" {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Equal(aptGet+" install --allow-downgrades openvoxdb-termini=8.2.0-1bookworm"))

	// a version on absent makes no sense
	if err := (&Package{Names: []string{"x"}, State: "absent", Version: "1"}).Validate(); err == nil {
		t.Error("version with absent accepted")
	}
	if err := (&Package{Names: []string{"x"}, State: "gone"}).Validate(); err == nil {
		t.Error("state gone accepted")
	}
}

// dpkgAfterInstall answers dpkg-query with before until apt-get install
// ran, then with after.
func dpkgAfterInstall(h *aptHost, before, after string) {
	installed := false
	h.on("dpkg-query -W", func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		if installed {
			return transport.Result{Stdout: after}
		}
		return transport.Result{Stdout: before}
	})
	h.on(aptGet+" install ", func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		installed = true
		return transport.Result{}
	})
}

// latest asks apt for every name; it is a change only when a version moved.
func TestPackageLatest(t *testing.T) {
	h := newAptHost(t)
	dpkgAfterInstall(h, "curl 7.88.1-10 ii\n", "curl 7.88.1-10+deb12u5 ii\n")
	res, err := runPackage(t, h, &Package{Names: []string{"curl"}, State: "latest"})
	if err != nil || !res.Changed || res.Msg != "latest" {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Equal(aptGet+" install --allow-downgrades curl"))
	h.ReceivedN(t, transporttest.Contains("dpkg-query"), 2)

	h = newAptHost(t)
	dpkgAfterInstall(h, "curl 7.88.1-10 ii\n", "curl 7.88.1-10 ii\n")
	res, err = runPackage(t, h, &Package{Names: []string{"curl"}, State: "latest"})
	if err != nil || res.Changed {
		t.Fatalf("already the newest: %+v %v", res, err)
	}
	h.ReceivedN(t, anyInstall, 1)
}

// upgraded moves what is installed and never installs what is not.
func TestPackageUpgraded(t *testing.T) {
	h := newAptHost(t)
	dpkgAfterInstall(h, "curl 7.88.1-10 ii\n", "curl 7.88.1-10+deb12u5 ii\n")
	res, err := runPackage(t, h, &Package{Names: []string{"curl", "git"}, State: "upgraded"})
	if err != nil || !res.Changed || res.Msg != "upgraded" {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Equal(aptGet+" install --allow-downgrades curl"))

	h = newAptHost(t)
	res, err = runPackage(t, h, &Package{Names: []string{"git"}, State: "upgraded"})
	if err != nil || res.Changed || res.Msg != "already upgraded" {
		t.Fatalf("nothing installed: %+v %v", res, err)
	}
	h.NotReceived(t, anyInstall)
}

// absent removes what is installed, only that.
func TestPackageAbsent(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "puppet 7.23.0-1 ii\n")
	h.reply(aptGet+" remove ", "")
	res, err := runPackage(t, h, &Package{Names: []string{"puppet", "puppet-agent"}, State: "absent"})
	if err != nil || !res.Changed || res.Msg != "puppet" {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Equal(aptGet+" remove puppet"))

	h = newAptHost(t)
	res, err = runPackage(t, h, &Package{Names: []string{"puppet"}, State: "absent"})
	if err != nil || res.Changed || res.Msg != "already absent" {
		t.Fatalf("%+v %v", res, err)
	}
	h.NotReceived(t, anyRemove)
}

// update_cache runs apt-get update first; a failed update fails the step
// before anything is installed.
func TestPackageUpdateCache(t *testing.T) {
	h := newAptHost(t)
	h.reply(aptGet+" update", "")
	if _, err := runPackage(t, h, &Package{Names: []string{"curl"}, UpdateCache: true}); err != nil {
		t.Fatal(err)
	}
	h.InOrder(t, transporttest.Equal(aptGet+" update"), transporttest.Contains("dpkg-query"), anyInstall)

	h = newAptHost(t)
	h.Fail(transporttest.Equal(aptGet+" update"), 100, "E: The repository 'http://deb.example/ bookworm Release' does not have a Release file.\n")
	_, err := runPackage(t, h, &Package{Names: []string{"curl"}, UpdateCache: true})
	if err == nil || !strings.Contains(err.Error(), "exit status 100") || !strings.Contains(err.Error(), "does not have a Release file") {
		t.Fatalf("%v", err)
	}
	h.NotReceived(t, anyInstall)
}

// download_only fetches what the install would, as a probe: never a
// change, and it runs under --noop only as a message.
func TestPackageDownloadOnly(t *testing.T) {
	h := newAptHost(t)
	h.reply("dpkg-query -W", "puppetserver 8.4.0-1 ii\n")
	h.reply(" install --download-only ", "")
	res, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}, Version: "8.5.0-1", State: "upgraded", DownloadOnly: true})
	if err != nil || res.Changed || res.Msg != "downloaded puppetserver=8.5.0-1" {
		t.Fatalf("%+v %v", res, err)
	}
	h.ReceivedN(t, anyInstall, 1)
	h.Received(t, transporttest.Equal(aptGet+" install --download-only --allow-downgrades puppetserver=8.5.0-1"))

	h = newAptHost(t)
	h.Fail(transporttest.Contains(" install --download-only "), 100, "E: Version '8.5.0-1' for 'puppetserver' was not found\n")
	_, err = runPackage(t, h, &Package{Names: []string{"puppetserver"}, Version: "8.5.0-1", DownloadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "was not found") {
		t.Fatalf("%v", err)
	}

	h = newAptHost(t)
	res, err = runPackageOn(t, h.fakeConn, true, &Package{Names: []string{"puppetserver"}, DownloadOnly: true})
	if err != nil || res.Changed || res.Msg != "would download puppetserver" {
		t.Fatalf("noop: %+v %v", res, err)
	}
	h.NotReceived(t, anyInstall)
	if err := (&Package{Names: []string{"x"}, State: "absent", DownloadOnly: true}).Validate(); err == nil {
		t.Error("download_only with absent accepted")
	}
	if err := (&Package{Names: []string{"x"}, DownloadOnly: true, HoldRestarts: true}).Validate(); err == nil {
		t.Error("download_only with hold_restarts accepted")
	}
}

// --noop: the probes run, no apt-get and no policy-rc.d; the step reports
// the install it would run.
func TestPackageNoop(t *testing.T) {
	h := newAptHost(t)
	s := &fakeSite{hosts: map[string]*fakeConn{"c": h.fakeConn}, noop: true}
	p := &Package{Names: []string{"puppetserver"}, HoldRestarts: true}
	res, err := p.Run(context.Background(), s.exec(t, "c"))
	if err != nil || !res.Changed || !strings.HasPrefix(res.Msg, "puppetserver") {
		t.Fatalf("%+v %v", res, err)
	}
	h.NotReceived(t, anyAptGet)
	h.NotReceived(t, anyPolicy)
	if len(s.events) != 1 || s.events[0].Kind != report.WouldRun || s.events[0].Text != aptGet+" install --allow-downgrades puppetserver" {
		t.Errorf("events %+v", s.events)
	}
}

// A failed install fails the step with apt's exit status and stderr.
func TestPackageInstallFails(t *testing.T) {
	h := newAptHost(t)
	h.installFails = true
	_, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}})
	if err == nil || err.Error() != "exit status 100: E: Sub-process /usr/bin/dpkg returned an error code (1)" {
		t.Fatalf("%v", err)
	}
	// and a failed manager probe fails it before anything else
	h = newAptHost(t)
	h.Fail(transporttest.Contains("command -v apt-get"), 126, "sh: permission denied\n")
	if _, err := runPackage(t, h, &Package{Names: []string{"puppetserver"}}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("%v", err)
	}
	h.NotReceived(t, transporttest.Contains("dpkg-query"))
}

// newDnfHost is a dnf host with nothing installed unless rpm is answered.
func newDnfHost(t *testing.T) *fakeConn {
	h := newFake(t)
	h.reply("command -v apt-get", "dnf\n")
	h.reply("rpm -q ", "")
	h.reply("dnf -y ", "")
	return h
}

// dnf: rpm asks what is installed, pins are name-version, latest installs
// then upgrades, hold_restarts says it holds nothing.
func TestPackageDnf(t *testing.T) {
	h := newDnfHost(t)
	h.reply("rpm -q ", "puppet-agent 8.4.0-1.el9\n")
	res, err := runPackageOn(t, h, false, &Package{Names: []string{"puppet-agent", "openvox-server"}, Versions: map[string]string{"openvox-server": "8.5.0-1.el9"}, HoldRestarts: true})
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "apt only, restarts not held") {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.HasPrefix("rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' puppet-agent openvox-server 2>/dev/null"))
	h.ReceivedN(t, transporttest.HasPrefix("dnf "), 1)
	h.Received(t, transporttest.Equal("dnf -y install openvox-server-8.5.0-1.el9"))
	h.NotReceived(t, anyPolicy)
	h.NotReceived(t, anyAptGet)

	for state, want := range map[string]string{
		"latest":   "dnf -y install puppet-agent && dnf -y upgrade puppet-agent",
		"upgraded": "dnf -y upgrade puppet-agent",
		"absent":   "dnf -y remove puppet-agent",
	} {
		h := newDnfHost(t)
		h.reply("rpm -q ", "puppet-agent 8.4.0-1.el9\n")
		if _, err := runPackageOn(t, h, false, &Package{Names: []string{"puppet-agent"}, State: state}); err != nil {
			t.Fatalf("%s: %v", state, err)
		}
		h.ReceivedN(t, transporttest.HasPrefix("dnf "), 1)
		h.Received(t, transporttest.Equal(want))
	}

	h = newDnfHost(t)
	h.reply("rpm -q ", "puppet-agent 8.4.0-1.el9\n")
	res, err = runPackageOn(t, h, false, &Package{Names: []string{"puppet-agent"}, State: "upgraded", DownloadOnly: true})
	if err != nil || res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	h.Received(t, transporttest.Equal("dnf -y upgrade --downloadonly puppet-agent"))

	// update_cache is apt's: dnf refreshes its metadata itself
	h = newDnfHost(t)
	if _, err := runPackageOn(t, h, false, &Package{Names: []string{"git"}, UpdateCache: true}); err != nil {
		t.Fatal(err)
	}
	h.NotReceived(t, transporttest.Contains("update"))
}

// The manager probe, run by a real sh on a PATH of stubs: apt when the
// host has apt-get (dnf beside it or not), dnf when only dnf.
func TestPackageManagerProbe(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, tc := range []struct {
		tools []string
		want  string
	}{
		{[]string{"apt-get", "dnf"}, aptGet + " install --allow-downgrades git"},
		{[]string{"apt-get"}, aptGet + " install --allow-downgrades git"},
		{[]string{"dnf"}, "dnf -y install git"},
	} {
		dir := t.TempDir()
		for _, tool := range tc.tools {
			if err := os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		h := newFake(t)
		h.On(transporttest.Contains("command -v apt-get"), func(c transporttest.Command) transport.Result {
			cmd := exec.Command("sh", "-c", c.Command)
			cmd.Env = []string{"PATH=" + dir}
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("probe: %v", err)
			}
			return transport.Result{Stdout: string(out)}
		})
		h.reply("dpkg-query", "")
		h.reply("rpm -q", "")
		h.reply(" install ", "")
		if _, err := runPackageOn(t, h, false, &Package{Names: []string{"git"}}); err != nil {
			t.Fatalf("%v: %v", tc.tools, err)
		}
		h.Received(t, transporttest.Equal(tc.want))
	}
}
