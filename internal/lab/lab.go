// Package lab runs a multi-host Puppet site test bed on one Linux machine.
//
// Each lab host boots Debian's systemd as its PID 1 with systemd-nspawn: its
// own mount, PID, UTS and IPC namespaces, a network namespace with its own IP
// on the bridge labbr0, its own hostname, and an overlayfs root (one cached
// debootstrap rootfs per suite as the lower dir, a per-host upper dir).
// systemd starts sshd and every service the roles install, through the
// packages' own units. Hosts start bare; everything else is installed by
// troupe from a local package repository that the lab serves over HTTP from
// the bridge address, together with a control repository (git dumb HTTP).
// No host has a route or a nameserver beyond the lab subnet.
//
// The design was first proven by a shell prototype; docs/lab.md has the
// figures and what the lab found in Debian's packages.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Spec says which lab to build. Zero fields take the defaults.
type Spec struct {
	Suite     string // bookworm (default; Puppet 7) | trixie (Puppet 8)
	Compilers int    // default 2
	Agents    int    // default 1
	// LoadBalancers is 1 (default: lb, which lb_name names) or 2: lb and
	// lb2 with keepalived carrying the virtual IP VIP (.29) that lb_name
	// names (inventory var lb_vip).
	LoadBalancers int `json:",omitempty"`
	// CAStandby adds ca2 (.9), the standby CA of group ca_standby, and
	// gives the CA a name of its own on the load balancer (see CAName).
	CAStandby bool `json:",omitempty"`
	// PuppetDBs is 1 (default: puppetdb .30) or 2 (and puppetdb2 .31,
	// sharing one database). With two, the agents' catalogs collect
	// exported resources too (they read PuppetDB while they compile).
	PuppetDBs int `json:",omitempty"`
	// Postgres puts PuppetDB's PostgreSQL on db .35 (group postgres)
	// rather than beside the first PuppetDB.
	Postgres bool   `json:",omitempty"`
	Subnet   string // first three octets of the /24, default "10.77.0"
	Domain   string // default "lab.test"
	CacheDir string // default /var/cache/troupe-lab
	WorkDir  string // default /var/lib/troupe-lab
	// Bridge is the lab's bridge in the root network namespace, default
	// labbr0. Another name (with another Subnet and WorkDir) lets a second
	// lab run beside the first: the tests use one. Host veths are named
	// lab-<short> on labbr0, <bridge>-<short> otherwise.
	Bridge string `json:",omitempty"`
}

// CAName is the name agents reach the CA by (inventory var ca_name): the
// CA host's own name, or with a standby CA puppetca.<domain>, a name of the
// load balancer that HAProxy routes to the active CA by SNI (ca_route:
// sni), so that plan ca-failover can move it to the standby.
func (s Spec) CAName() string {
	if s.CAStandby {
		return "puppetca." + s.Domain
	}
	return "ca." + s.Domain
}

// Defaults returns s with every empty field set to its default.
func (s Spec) Defaults() Spec {
	if s.Suite == "" {
		s.Suite = "bookworm"
	}
	if s.Compilers == 0 {
		s.Compilers = 2
	}
	if s.Agents == 0 {
		s.Agents = 1
	}
	if s.LoadBalancers == 0 {
		s.LoadBalancers = 1
	}
	if s.PuppetDBs == 0 {
		s.PuppetDBs = 1
	}
	if s.Subnet == "" {
		s.Subnet = "10.77.0"
	}
	if s.Domain == "" {
		s.Domain = "lab.test"
	}
	if s.CacheDir == "" {
		s.CacheDir = "/var/cache/troupe-lab"
	}
	if s.WorkDir == "" {
		s.WorkDir = "/var/lib/troupe-lab"
	}
	if s.Bridge == "" {
		s.Bridge = bridgeName
	}
	return s
}

func (s Spec) validate() error {
	if _, ok := rolePackages[s.Suite]; !ok {
		return fmt.Errorf("lab: unknown suite %q (bookworm or trixie)", s.Suite)
	}
	if s.Compilers < 1 || s.Compilers > 9 {
		return fmt.Errorf("lab: compilers must be 1..9, got %d", s.Compilers)
	}
	if s.Agents < 1 || s.Agents > 50 {
		return fmt.Errorf("lab: agents must be 1..50, got %d", s.Agents)
	}
	if s.LoadBalancers < 1 || s.LoadBalancers > 2 {
		return fmt.Errorf("lab: load balancers must be 1 or 2, got %d", s.LoadBalancers)
	}
	if s.PuppetDBs < 1 || s.PuppetDBs > 2 {
		return fmt.Errorf("lab: PuppetDBs must be 1 or 2, got %d", s.PuppetDBs)
	}
	var a, b, c int
	if n, _ := fmt.Sscanf(s.Subnet+"\n", "%d.%d.%d\n", &a, &b, &c); n != 3 || a > 255 || b > 255 || c > 255 {
		return fmt.Errorf("lab: subnet must be the first three octets of a /24, like 10.77.0; got %q", s.Subnet)
	}
	if len(s.Bridge) > 9 {
		return fmt.Errorf("lab: bridge name %q too long (at most 9 characters)", s.Bridge)
	}
	if !filepath.IsAbs(s.CacheDir) || !filepath.IsAbs(s.WorkDir) {
		return errors.New("lab: CacheDir and WorkDir must be absolute paths")
	}
	return nil
}

// Lab describes a running lab. It is saved as WorkDir/lab.json.
type Lab struct {
	Spec           Spec
	WorkDir        string
	Inventory      string // troupe inventory file written by Up
	KnownHosts     string // every host's real keys, by FQDN, short name and IP
	Key            string // client private key (authorized for root and lab on every host)
	Hosts          []LabHost
	Bridge         string // labbr0
	Gateway        string // bridge address, where the lab's HTTP server listens
	RepoURL        string // flat Debian repository: "deb [trusted=yes] RepoURL ./"
	UpgradeRepoURL string // bumped puppetserver and puppet-agent (+troupe1); not in the hosts' sources
	ControlRepoURL string // git (dumb HTTP) control repository: branches production and development
	VIP            string `json:",omitempty"` // with two load balancers: the virtual IP lb_name names
	Ready          bool   // false while Up is still building it
}

// LabHost is one host of the lab.
type LabHost struct {
	Name    string   // FQDN, e.g. ca.lab.test
	Short   string   // e.g. ca
	Address string   // e.g. 10.77.0.10
	Groups  []string // inventory groups: ca, compilers, loadbalancer, puppetdb, agents
	Aliases []string `json:",omitempty"` // other names in /etc/hosts (lb: puppet.<domain>, puppet)
}

// HostStatus is what Status reports for one host.
type HostStatus struct {
	Name     string
	Short    string
	Address  string
	Groups   []string
	Running  bool
	InitPID  int      // PID (root namespace) of the host's PID 1
	Procs    int      // processes in the host's pid namespace
	Services []string // main processes, e.g. "sshd", "puppetserver(java)", "postgres x12"
	RSSMiB   float64  // summed over the pid namespace
	PSSMiB   float64
	System   string   // systemctl is-system-running: running, degraded, starting, …
	Failed   []string // failed units
}

const (
	bridgeName = "labbr0"
	servePort  = "8800"
)

// paths inside WorkDir
func stateFile(w string) string { return filepath.Join(w, "lab.json") }
func lockFile(w string) string  { return filepath.Join(w, "lock") }
func hostsDir(w string) string  { return filepath.Join(w, "hosts") }
func wwwDir(w string) string    { return filepath.Join(w, "www") }

// ControlRepoDir is the bare git repository served at ControlRepoURL; a
// push to it followed by `git update-server-info` is what the hosts see.
func (l *Lab) ControlRepoDir() string { return filepath.Join(wwwDir(l.WorkDir), "control.git") }

// CheckHost returns a clear error unless this machine can run a lab: Linux,
// root, and the tools the lab shells out to.
func CheckHost() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("lab: needs Linux (namespaces, overlayfs); this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("lab: must run as root (namespaces, mounts, bridge)")
	}
	tools := []struct{ bin, pkg string }{
		{"unshare", "util-linux"}, {"nsenter", "util-linux"}, {"mount", "mount"},
		{"systemd-nspawn", "systemd-container"},
		{"ip", "iproute2"}, {"debootstrap", "debootstrap"}, {"dpkg-deb", "dpkg"},
		{"dpkg-scanpackages", "dpkg-dev"}, {"git", "git"}, {"ssh", "openssh-client"},
		{"ssh-keygen", "openssh-client"}, {"bash", "bash"}, {"du", "coreutils"},
	}
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, t.bin)
			if !seen[t.pkg] {
				seen[t.pkg] = true
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing tools %s; install them with: apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if !exists("/usr/share/keyrings/debian-archive-keyring.gpg") {
		return errors.New("lab: missing /usr/share/keyrings/debian-archive-keyring.gpg; install it with: apt-get install -y debian-archive-keyring")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && !strings.Contains(string(b), "overlay") {
		if err := exec.Command("modprobe", "overlay").Run(); err != nil {
			return errors.New("lab: the kernel has no overlayfs (modprobe overlay failed)")
		}
	}
	return nil
}

// Load returns the description of the lab running from workDir.
func Load(workDir string) (*Lab, error) {
	if workDir == "" {
		workDir = Spec{}.Defaults().WorkDir
	}
	l, err := loadState(workDir)
	if err != nil {
		return nil, err
	}
	if !l.Ready {
		return nil, fmt.Errorf("lab in %s is not up (a failed or running `up`; run `troupe lab down`)", workDir)
	}
	return l, nil
}

func loadState(workDir string) (*Lab, error) {
	b, err := os.ReadFile(stateFile(workDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (run `troupe lab up`)", workDir)
	}
	if err != nil {
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(workDir), err)
	}
	return &l, nil
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := stateFile(l.WorkDir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, stateFile(l.WorkDir))
}

// Host finds a host by FQDN, short name, alias or address.
func (l *Lab) Host(name string) (LabHost, bool) {
	for _, h := range l.Hosts {
		if h.Name == name || h.Short == name || h.Address == name {
			return h, true
		}
		for _, a := range h.Aliases {
			if a == name {
				return h, true
			}
		}
	}
	return LabHost{}, false
}

// Journal returns the last lines of a unit's journal on host, read from the
// host's root on this machine (journalctl -D), so it works when the host's
// sshd does not: for the report of a failure that may be sshd's own.
func (l *Lab) Journal(host, unit string, lines int) string {
	h, ok := l.Host(host)
	if !ok {
		return fmt.Sprintf("lab: no host %q", host)
	}
	dir := filepath.Join(l.hostDir(h), "merged", "var", "log", "journal")
	out, err := exec.Command("journalctl", "-D", dir, "-u", unit, "-n", strconv.Itoa(lines), "--no-pager", "-o", "short-iso").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("journalctl -D %s -u %s: %v\n%s", dir, unit, err, out)
	}
	return string(out)
}

// SSHCommand returns ssh(1) as root into host (FQDN, short name or alias),
// with the lab's key and strict checking against its known_hosts. Without
// args it is an interactive login. The caller wires stdio.
func (l *Lab) SSHCommand(host string, args ...string) *exec.Cmd {
	h, ok := l.Host(host)
	if !ok {
		cmd := exec.Command("ssh")
		var names []string
		for _, h := range l.Hosts {
			names = append(names, h.Short)
		}
		cmd.Err = fmt.Errorf("lab: no host %q (hosts: %s)", host, strings.Join(names, ", "))
		return cmd
	}
	argv := append(sshOptions(l), "root@"+h.Address)
	if len(args) > 0 {
		argv = append(argv, "--")
		argv = append(argv, args...)
	}
	return exec.Command("ssh", argv...)
}

func sshOptions(l *Lab) []string {
	return []string{
		"-i", l.Key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
	}
}

// Up builds the cache if needed and starts the lab. If the same lab is
// already up it returns it; a second concurrent Up (or Down) on the same
// WorkDir is refused.
func Up(ctx context.Context, s Spec, log io.Writer) (*Lab, error) {
	s = s.Defaults()
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := CheckHost(); err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	if err := os.MkdirAll(s.WorkDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockWorkDir(s.WorkDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if old, err := loadState(s.WorkDir); err == nil {
		old.Spec = old.Spec.Defaults() // state written before a field existed
		if !reflect.DeepEqual(old.Spec, s) && old.Ready {
			return nil, fmt.Errorf("lab: a lab with a different spec is up in %s (%s, %d compilers, %d agents, subnet %s); run `troupe lab down` first",
				s.WorkDir, old.Spec.Suite, old.Spec.Compilers, old.Spec.Agents, old.Spec.Subnet)
		}
		if old.Ready && reflect.DeepEqual(old.Spec, s) && old.healthy() == nil {
			logf(log, "already up (%d hosts)", len(old.Hosts))
			return old, nil
		}
		why := "an earlier `up` did not finish"
		if old.Ready {
			why = old.healthy().Error()
		}
		logf(log, "tearing down the lab left in %s: %s", s.WorkDir, why)
		if err := down(ctx, s.WorkDir, log); err != nil {
			return nil, err
		}
	} else if exists(stateFile(s.WorkDir)) {
		return nil, err
	}
	if exists("/sys/class/net/" + s.Bridge) {
		return nil, fmt.Errorf("lab: bridge %s already exists but no lab is recorded in %s (another lab with another WorkDir? `ip link del %s` if it is stale)",
			s.Bridge, s.WorkDir, s.Bridge)
	}

	t0 := time.Now()
	cache, err := ensureCache(ctx, s.CacheDir, s.Suite, log)
	if err != nil {
		return nil, err
	}
	l := newLab(s)
	if err := l.save(); err != nil { // from here on, Down knows what to clean
		return nil, err
	}
	t1 := time.Now()
	if err := l.start(ctx, cache, log); err != nil {
		logf(log, "up failed: %v; cleaning up", err)
		if derr := down(context.WithoutCancel(ctx), s.WorkDir, log); derr != nil {
			logf(log, "cleanup after failed up: %v", derr)
		}
		return nil, err
	}
	l.Ready = true
	if err := l.save(); err != nil {
		return nil, err
	}
	logf(log, "lab up: %d hosts in %.1fs (cache %.1fs); inventory %s", len(l.Hosts),
		time.Since(t1).Seconds(), t1.Sub(t0).Seconds(), l.Inventory)
	return l, nil
}

func lockWorkDir(w string) (func(), error) {
	unlock, err := flock(lockFile(w), false)
	if errors.Is(err, errLocked) {
		holder := strings.TrimSpace(readFileString(lockFile(w)))
		return nil, fmt.Errorf("lab: another `troupe lab up` or `down` is running on %s (pid %s holds %s); wait for it to finish",
			w, holder, lockFile(w))
	}
	return unlock, err
}

func readFileString(p string) string { b, _ := os.ReadFile(p); return string(b) }

// Down stops every host and the HTTP server, removes the bridge and veths and
// everything in workDir (the cache stays). It is safe after a failed Up and
// when nothing is up.
func Down(ctx context.Context, workDir string, log io.Writer) error {
	if workDir == "" {
		workDir = Spec{}.Defaults().WorkDir
	}
	if log == nil {
		log = io.Discard
	}
	if os.Geteuid() != 0 {
		return errors.New("lab: must run as root")
	}
	if !exists(workDir) {
		return nil
	}
	unlock, err := lockWorkDir(workDir)
	if err != nil {
		return err
	}
	defer unlock()
	return down(ctx, workDir, log)
}
