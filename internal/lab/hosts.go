package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/troupe/troupe/internal/fanout"
)

// newLab lays out the topology of s: ca .10, compile1..N .11.., lb .20
// (alias puppet.<domain>), puppetdb .30 (puppetdb2 .31, db .35: see Spec),
// agent1..M .40..; with two load
// balancers, lb .20 and lb2 .21, and puppet.<domain> is the VIP .29; with a
// standby CA, ca2 .9, and the CA's name (CAName) is the load balancer's
// too, routed to the active CA by SNI (see CAName).
func newLab(s Spec) *Lab {
	w := s.WorkDir
	gw := s.Subnet + ".1"
	l := &Lab{
		Spec:           s,
		WorkDir:        w,
		Inventory:      filepath.Join(w, "inventory.yaml"),
		KnownHosts:     filepath.Join(w, "known_hosts"),
		Key:            filepath.Join(w, "id_ed25519"),
		Bridge:         s.Bridge,
		Gateway:        gw,
		RepoURL:        "http://" + gw + ":" + servePort + "/debian",
		UpgradeRepoURL: "http://" + gw + ":" + servePort + "/upgrade",
		ControlRepoURL: "http://" + gw + ":" + servePort + "/control.git",
	}
	add := func(short string, octet int, group string, aliases ...string) {
		l.Hosts = append(l.Hosts, LabHost{
			Name: short + "." + s.Domain, Short: short, Address: fmt.Sprintf("%s.%d", s.Subnet, octet),
			Groups: []string{group}, Aliases: aliases,
		})
	}
	add("ca", 10, "ca")
	if s.CAStandby {
		add("ca2", 9, "ca_standby")
	}
	for i := 1; i <= s.Compilers; i++ {
		add(fmt.Sprintf("compile%d", i), 10+i, "compilers")
	}
	if s.LoadBalancers == 1 {
		aliases := []string{"puppet." + s.Domain, "puppet"}
		if s.CAStandby {
			aliases = append(aliases, s.CAName())
		}
		add("lb", 20, "loadbalancer", aliases...)
	} else {
		add("lb", 20, "loadbalancer")
		add("lb2", 21, "loadbalancer")
		l.VIP = s.Subnet + ".29"
	}
	add("puppetdb", 30, "puppetdb")
	if s.PuppetDBs > 1 {
		add("puppetdb2", 31, "puppetdb")
	}
	if s.Postgres {
		add("db", 35, "postgres")
	}
	for i := 1; i <= s.Agents; i++ {
		add(fmt.Sprintf("agent%d", i), 39+i, "agents")
	}
	return l
}

func (l *Lab) hostDir(h LabHost) string { return filepath.Join(hostsDir(l.WorkDir), h.Short) }

// start does everything after the cache: keys, control repo, bridge, server,
// hosts, known_hosts, inventory; it returns when every sshd answers.
func (l *Lab) start(ctx context.Context, cache suiteCache, log io.Writer) error {
	t0 := time.Now()
	if err := os.MkdirAll(hostsDir(l.WorkDir), 0o755); err != nil {
		return err
	}
	if err := run(ctx, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "troupe-lab", "-f", l.Key); err != nil {
		return err
	}
	pub, err := os.ReadFile(l.Key + ".pub")
	if err != nil {
		return err
	}
	// Host keys are made here, before boot, so known_hosts holds the real ones.
	prepared := fanout.Each(ctx, l.Hosts, len(l.Hosts), func(ctx context.Context, h LabHost) error {
		return l.prepareHost(ctx, h, string(pub))
	})
	if err := errors.Join(prepared...); err != nil {
		return err
	}
	if err := l.writeKnownHosts(); err != nil {
		return err
	}
	if err := l.writeInventory(); err != nil {
		return err
	}
	logf(log, "keys and host files ready (%.1fs)", time.Since(t0).Seconds())

	// What the HTTP server shows: the cached repositories and the control repo.
	www := wwwDir(l.WorkDir)
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	for name, target := range map[string]string{
		"debian":  filepath.Join(cache.repo(), "debian"),
		"upgrade": filepath.Join(cache.repo(), "upgrade"),
	} {
		if err := os.Symlink(target, filepath.Join(www, name)); err != nil {
			return err
		}
	}
	if err := buildControlRepo(ctx, filepath.Join(www, "control.git")); err != nil {
		return fmt.Errorf("control repository: %w", err)
	}

	// Network: bridge at .1; hosts get only the link route of the /24.
	if err := run(ctx, nil, "ip", "link", "add", l.Bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run(ctx, nil, "ip", "addr", "add", l.Gateway+"/24", "dev", l.Bridge); err != nil {
		return err
	}
	if err := run(ctx, nil, "ip", "link", "set", l.Bridge, "up"); err != nil {
		return err
	}
	if err := startServer(l.WorkDir, l.Gateway+":"+servePort, "/debian/Release"); err != nil {
		return err
	}
	t1 := time.Now()
	for _, h := range l.Hosts {
		if err := l.bootHost(ctx, cache, h); err != nil {
			return err
		}
	}
	for _, h := range l.Hosts {
		if err := l.waitSSH(ctx, h, 30*time.Second); err != nil {
			return err
		}
	}
	logf(log, "%d hosts booted, sshd answering (%.1fs)", len(l.Hosts), time.Since(t1).Seconds())
	return nil
}

// prepareHost writes WorkDir/hosts/<short>/files: the tree bootHost copies
// over the host's root, with its SSH host keys.
func (l *Lab) prepareHost(ctx context.Context, h LabHost, pub string) error {
	hd := l.hostDir(h)
	f := filepath.Join(hd, "files")
	for _, d := range []string{"upper", "work", "merged", "files/etc/ssh", "files/root/.ssh", "files/home/lab/.ssh"} {
		if err := os.MkdirAll(filepath.Join(hd, d), 0o755); err != nil {
			return err
		}
	}
	// Host keys are generated once per host name and kept in
	// CacheDir/hostkeys/<fqdn>, so a host keeps its keys across up/down
	// (RSA generation costs seconds), then copied into the host's files.
	kd := filepath.Join(l.Spec.CacheDir, "hostkeys", h.Name)
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return err
	}
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		key := filepath.Join(kd, "ssh_host_"+t+"_key")
		if !exists(key) || !exists(key+".pub") {
			os.Remove(key)
			os.Remove(key + ".pub")
			args := []string{"-q", "-t", t, "-N", "", "-C", "root@" + h.Name, "-f", key}
			if t == "rsa" {
				args = append(args, "-b", "3072")
			}
			if err := run(ctx, nil, "ssh-keygen", args...); err != nil {
				return err
			}
		}
		for _, suffix := range []string{"", ".pub"} {
			b, err := os.ReadFile(key + suffix)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o600)
			if suffix != "" {
				mode = 0o644
			}
			if err := os.WriteFile(filepath.Join(f, "etc/ssh", filepath.Base(key)+suffix), b, mode); err != nil {
				return err
			}
		}
	}
	files := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/hostname", h.Short + "\n", 0o644},
		{"etc/hosts", l.etcHosts(), 0o644},
		{"etc/resolv.conf", "search " + l.Spec.Domain + "\noptions timeout:1 attempts:1\n", 0o644},
		{"etc/apt/sources.list", "# the lab's local repository (troupe lab); nothing else is reachable\ndeb [trusted=yes] " + l.RepoURL + " ./\n", 0o644},
		{"root/.ssh/authorized_keys", pub, 0o600},
		{"home/lab/.ssh/authorized_keys", pub, 0o600},
	}
	if l.Spec.PuppetDBs > 1 && slices.Contains(h.Groups, "agents") {
		// an external fact the lab's control repository reads: collect
		// exported resources (fixtures/control-repo/*/manifests/site.pp)
		files = append(files, struct {
			path, content string
			mode          os.FileMode
		}{"etc/facter/facts.d/troupe_lab.txt", "troupe_lab_collect=true\n", 0o644})
	}
	for _, x := range files {
		if err := writeFile(filepath.Join(f, x.path), x.content, x.mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(f, x.path), x.mode); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(f, "root/.ssh"), 0o700)
	os.Chmod(filepath.Join(f, "home/lab/.ssh"), 0o700)
	return nil
}

// etcHosts is every host's /etc/hosts: the gateway, every host by name and
// aliases, and the VIP of two load balancers as the LB's name.
func (l *Lab) etcHosts() string {
	var hosts strings.Builder
	fmt.Fprintf(&hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\tgw.%s gw\n", l.Gateway, l.Spec.Domain)
	for _, o := range l.Hosts {
		fmt.Fprintf(&hosts, "%s\t%s %s", o.Address, o.Name, o.Short)
		for _, a := range o.Aliases {
			fmt.Fprintf(&hosts, " %s", a)
		}
		hosts.WriteString("\n")
	}
	if l.VIP != "" {
		fmt.Fprintf(&hosts, "%s\tpuppet.%s puppet", l.VIP, l.Spec.Domain)
		if l.Spec.CAStandby {
			fmt.Fprintf(&hosts, " %s", l.Spec.CAName())
		}
		hosts.WriteString("\n")
	}
	return hosts.String()
}

func (l *Lab) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range l.Hosts {
		names := append([]string{h.Name, h.Short, h.Address}, h.Aliases...)
		for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
			pub, err := os.ReadFile(filepath.Join(l.hostDir(h), "files/etc/ssh/ssh_host_"+t+"_key.pub"))
			if err != nil {
				return err
			}
			fields := strings.Fields(string(pub))
			if len(fields) < 2 {
				return fmt.Errorf("bad host key %s", t)
			}
			fmt.Fprintf(&b, "%s %s %s\n", strings.Join(names, ","), fields[0], fields[1])
		}
	}
	return os.WriteFile(l.KnownHosts, []byte(b.String()), 0o644)
}

// netns is the name of a host's network namespace (/run/netns/NAME) and
// of its nspawn machine: unique per bridge, so two labs can run side by side.
func netns(bridge string, h LabHost) string { return bridge + "-" + h.Short }

// bootHost boots the host: its network namespace with a veth on the bridge,
// its overlay root with the per-host files, then systemd-nspawn -b, which
// runs the rootfs's systemd as the host's PID 1 in its own mount, PID, UTS
// and IPC namespaces and joins the network namespace. --keep-unit and
// --register=no: the runner's PID 1 need not be systemd (no scope, no
// machined). --resolv-conf=off and --timezone=off keep the lab's files.
func (l *Lab) bootHost(ctx context.Context, cache suiteCache, h LabHost) error {
	hd := l.hostDir(h)
	ns, veth := netns(l.Bridge, h), vethName(l.Bridge, h)
	for _, args := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", veth, "master", l.Bridge, "up"},
		{"ip", "-n", ns, "addr", "add", h.Address + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := run(ctx, nil, args[0], args[1:]...); err != nil {
			return fmt.Errorf("%s: %w", h.Short, err)
		}
	}
	m := filepath.Join(hd, "merged")
	opts := "lowerdir=" + cache.rootfs() + ",upperdir=" + filepath.Join(hd, "upper") + ",workdir=" + filepath.Join(hd, "work")
	if err := run(ctx, nil, "mount", "-t", "overlay", "overlay", "-o", opts, m); err != nil {
		return fmt.Errorf("%s: %w", h.Short, err)
	}
	// The per-host files, written through the overlay (into the upper dir).
	// cp -a gives /home/lab the runner's (root's) ownership: hand it back to
	// its user, or nothing it runs can write there (~/.cache, ~/.ssh).
	if err := run(ctx, nil, "cp", "-a", filepath.Join(hd, "files")+"/.", m+"/"); err != nil {
		return fmt.Errorf("%s: %w", h.Short, err)
	}
	if err := run(ctx, nil, "chown", "-R", "1000:1000", filepath.Join(m, "home/lab")); err != nil {
		return fmt.Errorf("%s: %w", h.Short, err)
	}
	lists, _ := filepath.Glob(filepath.Join(m, "etc/apt/sources.list.d/*"))
	for _, f := range lists {
		os.Remove(f)
	}
	return l.startSystemd(h)
}

// startSystemd runs systemd-nspawn -b on the host's merged root, in its
// network namespace, and records the PIDs of nspawn and of the host's
// systemd.
func (l *Lab) startSystemd(h LabHost) error {
	hd := l.hostDir(h)
	ns, m := netns(l.Bridge, h), filepath.Join(hd, "merged")
	console, err := os.OpenFile(filepath.Join(hd, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := exec.Command("systemd-nspawn", "--quiet", "--boot", "--directory", m,
		"--machine", ns, "--hostname", h.Short, "--network-namespace-path", "/run/netns/"+ns,
		"--register=no", "--keep-unit", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
		"--console=read-only",
		// A host may change its own network (keepalived adds and removes
		// the load balancers' virtual IP): nspawn keeps CAP_NET_ADMIN only
		// for networks it makes itself (systemd-nspawn(1), --private-network),
		// not for the namespace it is given here.
		"--capability=CAP_NET_ADMIN")
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: systemd-nspawn: %w", h.Short, err)
	}
	go cmd.Wait()
	npid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(hd, "nspawn.pid"), []byte(strconv.Itoa(npid)+"\n"), 0o644); err != nil {
		return err
	}
	var ipid int
	for i := 0; i < 250 && ipid == 0; i++ {
		for _, c := range children(npid) {
			if strings.TrimSpace(readFileString(fmt.Sprintf("/proc/%d/comm", c))) == "systemd" {
				ipid = c
			}
		}
		if ipid == 0 {
			if !procAlive(npid) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if ipid == 0 {
		return fmt.Errorf("%s: systemd did not start as the host's PID 1 (this machine cannot boot it in systemd-nspawn?): %s",
			h.Short, tail(console.Name(), 10))
	}
	return os.WriteFile(filepath.Join(hd, "init.pid"), []byte(strconv.Itoa(ipid)+"\n"), 0o644)
}

// shutdownBound is how long down waits for the hosts' systemd to shut down
// before it kills what is left.
var shutdownBound = 30 * time.Second

// sigHalt is SIGRTMIN+3, what systemd as PID 1 takes as "halt" (glibc's
// SIGRTMIN is 34): the clean shutdown systemd-nspawn itself sends.
const sigHalt = syscall.Signal(34 + 3)

// children lists the child processes of pid.
func children(pid int) []int {
	var out []int
	for _, f := range strings.Fields(readFileString(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func vethName(bridge string, h LabHost) string {
	prefix := bridge
	if bridge == bridgeName {
		prefix = "lab"
	}
	n := prefix + "-" + h.Short
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// waitSSH waits until the host's sshd sends its banner and the host lets
// users log in: /run/nologin gone. systemd-tmpfiles makes it early in the
// boot and systemd-user-sessions.service removes it; sshd may answer
// before that, and meanwhile pam_nologin refuses every login but root's
// ("fatal: Access denied for user lab by PAM account configuration"; a
// fresh-clone CI run met it on agent2, troupe saw a handshake EOF). The
// file is read through /proc/PID/root, the host's own view of its /run.
func (l *Lab) waitSSH(ctx context.Context, h LabHost, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", h.Address+":22", 500*time.Millisecond)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "SSH-") {
				ipid := l.initPID(h)
				if ipid == 0 {
					return fmt.Errorf("%s: its systemd is gone; console: %s", h.Short, tail(filepath.Join(l.hostDir(h), "console.log"), 15))
				}
				if !exists(fmt.Sprintf("/proc/%d/root/run/nologin", ipid)) {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: sshd did not answer on %s:22, or /run/nologin was still there, within %s; console: %s",
		h.Short, h.Address, d, tail(filepath.Join(l.hostDir(h), "console.log"), 15))
}

// initPID returns the PID (in the runner's namespace) of the host's PID 1,
// its systemd, if it is still the one this lab booted.
func (l *Lab) initPID(h LabHost) int {
	hd := l.hostDir(h)
	npid := readPID(filepath.Join(hd, "nspawn.pid"))
	ipid := readPID(filepath.Join(hd, "init.pid"))
	if ipid == 0 || !procAlive(ipid) || !procAlive(npid) || !strings.Contains(procCmdline(npid), hd+"/") {
		return 0
	}
	return ipid
}

// healthy: every host's PID 1 and the HTTP server are alive.
func (l *Lab) healthy() error {
	for _, h := range l.Hosts {
		if l.initPID(h) == 0 {
			return fmt.Errorf("host %s is not running", h.Short)
		}
	}
	if !serverAlive(l.WorkDir) {
		return errors.New("the lab HTTP server is not running")
	}
	return nil
}

// down: hosts (systemd's clean shutdown, SIGRTMIN+3 to each PID 1; SIGKILL
// to the PID 1 of a host still up after shutdownBound, which ends its whole PID
// namespace), server, network namespaces, veths, bridge, mounts, then
// everything in workDir but the lock.
func down(ctx context.Context, workDir string, log io.Writer) error {
	t0 := time.Now()
	l, _ := loadState(workDir)
	hd := hostsDir(workDir)
	// Every systemd-nspawn started for a host of this WorkDir, by command
	// line (also covers hosts whose pid files were never written).
	var launchers []int
	for _, p := range allPIDs() {
		cl := procCmdline(p)
		// unshare: a host of a lab booted before systemd did (its PID 1
		// dies of sigHalt's default action, and its namespace with it).
		if (strings.HasPrefix(cl, "systemd-nspawn ") || strings.HasPrefix(cl, "unshare ")) && strings.Contains(cl, hd+"/") {
			launchers = append(launchers, p)
		}
	}
	inits := map[int]int{} // launcher -> its child (the host's PID 1)
	for _, n := range launchers {
		if c := children(n); len(c) > 0 {
			inits[n] = c[0]
			syscall.Kill(c[0], sigHalt)
		} else {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(shutdownBound)
	for _, n := range launchers {
		if !waitGone(n, time.Until(deadline)) {
			logf(log, "host process %d did not shut down in %s; killing its PID 1", n, shutdownBound)
			if c := inits[n]; c > 0 {
				syscall.Kill(c, syscall.SIGKILL)
			}
			if !waitGone(n, 5*time.Second) {
				syscall.Kill(n, syscall.SIGKILL)
				waitGone(n, 5*time.Second)
			}
		}
	}
	stopServer(workDir)
	// veths normally vanish with their netns; the bridge is ours to delete.
	if l != nil {
		br := l.Bridge
		if br == "" {
			br = bridgeName
		}
		for _, h := range l.Hosts {
			if v := vethName(br, h); exists("/sys/class/net/" + v) {
				run(ctx, nil, "ip", "link", "del", v)
			}
			if ns := netns(br, h); exists("/run/netns/" + ns) {
				if err := run(ctx, nil, "ip", "netns", "del", ns); err != nil {
					return err
				}
			}
			// nspawn's propagation directory outlives the container.
			os.RemoveAll("/run/systemd/nspawn/propagate/" + netns(br, h))
		}
		if exists("/sys/class/net/" + br) {
			if err := run(ctx, nil, "ip", "link", "del", br); err != nil {
				return err
			}
		}
	}
	// No mount of the root namespace should point into workDir; in case one does.
	for _, m := range mountsUnder(workDir) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	ents, _ := os.ReadDir(workDir)
	for _, e := range ents {
		if e.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(workDir, e.Name())); err != nil {
			return fmt.Errorf("lab down: %w", err)
		}
	}
	if len(launchers) > 0 || l != nil {
		logf(log, "lab down (%d hosts stopped) in %.1fs", len(launchers), time.Since(t0).Seconds())
	}
	return nil
}

// mountsUnder lists mount points of this mount namespace under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ms)))
	return ms
}

// Status reports each host: address, groups, main processes and memory
// (RSS and PSS summed over the host's pid namespace).
func (l *Lab) Status() ([]HostStatus, error) {
	// pid namespace -> processes
	byNS := map[string][]int{}
	for _, p := range allPIDs() {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p))
		if err == nil {
			byNS[ns] = append(byNS[ns], p)
		}
	}
	var out []HostStatus
	for _, h := range l.Hosts {
		st := HostStatus{Name: h.Name, Short: h.Short, Address: h.Address, Groups: h.Groups}
		ipid := l.initPID(h)
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", ipid))
		if ipid == 0 || err != nil {
			out = append(out, st)
			continue
		}
		st.Running, st.InitPID = true, ipid
		st.System, st.Failed = systemState(ipid)
		counts := map[string]int{}
		for _, p := range byNS[ns] {
			st.Procs++
			rss, pss := smapsRollup(p)
			st.RSSMiB += rss / 1024
			st.PSSMiB += pss / 1024
			if name := serviceName(p); name != "" {
				counts[name]++
			}
		}
		names := make([]string, 0, len(counts))
		for n := range counts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if counts[n] > 1 {
				n = fmt.Sprintf("%s x%d", n, counts[n])
			}
			st.Services = append(st.Services, n)
		}
		out = append(out, st)
	}
	return out, nil
}

// systemState asks the host's systemd, from inside its namespaces, how the
// system is (is-system-running) and which units failed.
func systemState(ipid int) (string, []string) {
	in := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(ipid), "-m", "-p", "-u", "-i", "-n", "--", "systemctl"}, args...)...).Output()
		return strings.TrimSpace(string(out))
	}
	state := in("is-system-running")
	var failed []string
	for _, line := range strings.Split(in("list-units", "--state=failed", "--plain", "--no-legend", "--no-pager"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			failed = append(failed, f[0])
		}
	}
	return state, failed
}

// serviceName classifies a process as one of the lab's main services.
func serviceName(pid int) string {
	comm := strings.TrimSpace(readFileString(fmt.Sprintf("/proc/%d/comm", pid)))
	switch comm {
	case "sshd", "haproxy", "postgres", "puppet":
		return comm
	case "java":
		cl := procCmdline(pid)
		switch {
		case strings.Contains(cl, "puppetserver"):
			return "puppetserver(java)"
		case strings.Contains(cl, "puppetdb"):
			return "puppetdb(java)"
		}
		return "java"
	}
	if strings.HasPrefix(comm, "sshd") { // sshd-session on trixie
		return "sshd"
	}
	if strings.HasPrefix(comm, "puppet") || strings.Contains(procCmdline(pid), "/usr/bin/puppet agent") {
		return "puppet"
	}
	return ""
}

// smapsRollup returns Rss and Pss in KiB.
func smapsRollup(pid int) (rss, pss float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

// SSHDPID returns the PID, in the runner's namespace, of the sshd that
// listens on host (a child of the host's systemd): what a test traces to
// see everything a login on the host does.
func (l *Lab) SSHDPID(host string) (int, error) {
	h, ok := l.Host(host)
	if !ok {
		return 0, fmt.Errorf("no host %q in the lab", host)
	}
	ipid := l.initPID(h)
	if ipid == 0 {
		return 0, fmt.Errorf("%s is not running", h.Short)
	}
	for _, c := range children(ipid) {
		if cmd := procCmdline(c); strings.Contains(cmd, "sshd") && strings.Contains(cmd, "listener") ||
			strings.HasPrefix(cmd, "/usr/sbin/sshd") || strings.HasPrefix(cmd, "sshd:") && !strings.Contains(cmd, "@") {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%s: no sshd among the children of its systemd (%d)", h.Short, ipid)
}

// PowerOn boots a host that Halt cut off, as power coming back does: its
// link up again and its systemd started on the root it had (what it wrote
// before the halt is still there, as on a disk); it returns when its sshd
// lets users log in.
func (l *Lab) PowerOn(ctx context.Context, host string) error {
	h, ok := l.Host(host)
	if !ok {
		return fmt.Errorf("lab: no host %q", host)
	}
	if l.initPID(h) != 0 {
		return fmt.Errorf("lab: %s is running", h.Short)
	}
	if err := run(ctx, nil, "ip", "link", "set", vethName(l.Bridge, h), "up"); err != nil {
		return fmt.Errorf("%s: %w", h.Short, err)
	}
	if err := l.startSystemd(h); err != nil {
		return err
	}
	return l.waitSSH(ctx, h, 2*time.Minute)
}

// Halt cuts a host off as a power loss does: its link to the bridge goes
// down, so the network namespace (which outlives the host) no longer answers
// for any address the host held, and its PID 1 is killed, which ends every
// process of the host at once, with no shutdown. The host stays down until
// PowerOn or `lab down`.
func (l *Lab) Halt(host string) error {
	h, ok := l.Host(host)
	if !ok {
		return fmt.Errorf("lab: no host %q", host)
	}
	ipid := l.initPID(h)
	if ipid == 0 {
		return fmt.Errorf("lab: %s is not running", h.Short)
	}
	if err := run(context.Background(), nil, "ip", "link", "set", vethName(l.Bridge, h), "down"); err != nil {
		return fmt.Errorf("%s: %w", h.Short, err)
	}
	if err := syscall.Kill(ipid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("%s: kill PID 1 (%d): %w", h.Short, ipid, err)
	}
	if !waitGone(ipid, 10*time.Second) {
		return fmt.Errorf("%s: PID 1 (%d) still there 10 s after SIGKILL", h.Short, ipid)
	}
	return nil
}
