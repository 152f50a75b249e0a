// Package e2e runs troupe against a real lab site (package lab): bare hosts
// in, a load-balanced Puppet site out, checked from every side over SSH.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/lab"
	"github.com/troupe/troupe/internal/testenv"
)

// TestMain: the lab's HTTP server is this test binary re-executed (lab.MaybeServe).
func TestMain(m *testing.M) {
	lab.MaybeServe()
	noteCommit()
	os.Exit(m.Run())
}

// TestBootstrap is the MUST SHOW, once per Debian suite: bookworm
// (Puppet 7) and trixie (Puppet 8). TROUPE_E2E_SUITES=bookworm picks one;
// TROUPE_E2E_KEEP=1 leaves the lab up after a failure for a look;
// TROUPE_E2E_ONLY=a,b runs only those day-2 scenarios (never under CI).
func TestBootstrap(t *testing.T) {
	if runtime.GOOS != "linux" {
		testenv.Skip(t, "the lab needs Linux (namespaces, overlayfs)")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "the lab needs root (namespaces, mounts, a bridge); run go test as root")
	}
	if testing.Short() {
		testenv.Skip(t, "end-to-end: bootstrap and day-2 scenarios, about 25 minutes per suite; skipped with -short")
	}
	if err := lab.CheckHost(); err != nil {
		testenv.Skip(t, err)
	}
	bin := buildTroupe(t)
	suites := []string{"bookworm", "trixie"}
	if s := os.Getenv("TROUPE_E2E_SUITES"); s != "" {
		suites = strings.Split(s, ",")
	}
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) { bootstrapSuite(t, bin, suite) })
	}
}

func buildTroupe(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "troupe")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/troupe")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func repoRoot(t *testing.T) string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above " + wd)
	return ""
}

type site struct {
	t   *testing.T
	l   *lab.Lab
	bin string
	dir string // state dir for troupe's journals and logs
	inv string // the inventory troupe runs with
	// traffic caches trafficLB (shared by the scenarios' copies of the
	// site): the VIP moves only when lb-failover halts its holder.
	traffic *string
}

// spareInventory writes a copy of the lab's inventory in which the compiler
// short is in a group "spare" instead of "compilers", into dir (which must
// outlive every scenario that uses it: not a subtest's TempDir).
func spareInventory(t *testing.T, dir, inv, short string) string {
	return regroupInventory(t, dir, inv, short, "compilers", "spare")
}

// regroupInventory writes a copy of inventory inv in which the host short
// is in group to (added last) instead of group from, into dir.
func regroupInventory(t *testing.T, dir, inv, short, from, to string) string {
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`,? ?\{name: ` + short + `\.[^}]*\}`)
	var moved string
	out := regexp.MustCompile(`(?m)^  `+from+`:.*$`).ReplaceAllStringFunc(string(b), func(line string) string {
		moved = strings.TrimPrefix(strings.TrimSpace(entry.FindString(line)), ",")
		return entry.ReplaceAllString(line, "")
	})
	if moved == "" {
		t.Fatalf("no %s in group %s of %s", short, from, inv)
	}
	out += fmt.Sprintf("  %-13s {targets: [%s]}\n", to+":", strings.TrimSpace(moved))
	p := filepath.Join(dir, "inventory-without-"+short+".yaml")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func bootstrapSuite(t *testing.T, bin, suite string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	t0 := time.Now()
	// A work dir of its own: fresh, bare hosts, never an operator's lab.
	// Its own bridge and subnet, so the test runs beside a demo lab (labbr0).
	l, err := lab.Up(ctx, lab.Spec{Suite: suite, WorkDir: filepath.Join(t.TempDir(), "work"), Subnet: "10.77.8", Bridge: "labe0", Compilers: 3, Agents: 2,
		LoadBalancers: loadBalancers[suite], CAStandby: caStandby[suite], PuppetDBs: puppetDBs[suite], Postgres: puppetDBs[suite] > 1}, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab up (%s) in %s", suite, time.Since(t0).Round(time.Second))
	defer func() {
		if t.Failed() && os.Getenv("TROUPE_E2E_KEEP") != "" {
			t.Logf("TROUPE_E2E_KEEP: lab left up in %s", l.WorkDir)
			return
		}
		if err := lab.Down(context.Background(), l.WorkDir, testLog{t}); err != nil {
			t.Errorf("lab down: %v", err)
		}
	}()
	// compile3 is a bare spare host until the add-compiler scenario: the
	// site is bootstrapped from an inventory that does not list it as a
	// compiler yet.
	s := &site{t: t, l: l, bin: bin, dir: t.TempDir(), inv: spareInventory(t, t.TempDir(), l.Inventory, "compile3"), traffic: new(string)}

	// 0. The README's quick start on bare hosts: --noop shows the whole
	// bootstrap (reads of what the shown install would bring are skipped,
	// saying why) and changes nothing: /etc and the package lists as before.
	bare := []string{"ca", "compile1", "puppetdb", "agent1"}
	was := s.fingerprints(bare)
	noop := s.troupeRun(ctx, "run", "bootstrap", "--noop")
	if noop.code != 0 || len(noop.with("changed")) < 20 {
		t.Errorf("bootstrap --noop on bare hosts: exit %d, %d changes shown\n%s\n%s", noop.code, len(noop.with("changed")), strings.Join(noop.with("failed"), "\n"), noop.stderr)
	}
	for h, fp := range s.fingerprints(bare) {
		if fp != was[h] {
			t.Errorf("bootstrap --noop changed %s", h)
		}
	}

	// 1. The bootstrap, from bare hosts.
	first, changed1 := s.troupe(ctx, "run", "bootstrap")
	t.Logf("first bootstrap: %s, %d changed", first.Round(time.Second), len(changed1))
	seconds(t, "first bootstrap", first)
	record(t, "first bootstrap: changed", float64(len(changed1)), "count")

	// 2. An agent run through the LB applies the control repository's resources.
	out, rc := s.agentRun("agent1")
	if rc != 0 && rc != 2 {
		t.Fatalf("puppet agent -t on agent1: rc %d\n%s", rc, out)
	}
	if got := s.ssh("agent1", "cat /etc/troupe_demo.txt"); !strings.Contains(got, "Hello from the troupe lab") {
		t.Errorf("/etc/troupe_demo.txt (module troupe_demo of the control repository): %q", got)
	}

	// 3. leastconn spreads the runs over both compilers.
	seen := map[string]int{}
	for i := 0; i < 6 && len(seen) < 2; i++ {
		out, rc := s.agentRun("agent1")
		if rc != 0 && rc != 2 {
			t.Fatalf("agent run %d: rc %d\n%s", i, rc, out)
		}
		seen[compiledBy(t, out)]++
	}
	t.Logf("compiled by: %v", seen)
	if seen["compile1.lab.test"] == 0 || seen["compile2.lab.test"] == 0 {
		t.Errorf("both compilers should compile; saw %v", seen)
	}

	// 4. compile1 drained through the runtime API: every run succeeds on compile2.
	s.troupe(ctx, "run", "lb-server", "--param", "state=drain", "--limit", "compile1.lab.test")
	if st := s.haproxyStatus(); st["compile1"] != "DRAIN" {
		t.Errorf("after drain: %v", st)
	}
	for i := 0; i < 3; i++ {
		out, rc := s.agentRun("agent1")
		if rc != 0 && rc != 2 {
			t.Errorf("agent run with compile1 drained: rc %d\n%s", rc, out)
		} else if by := compiledBy(t, out); by != "compile2.lab.test" {
			t.Errorf("compiled by %s while compile1 was drained", by)
		}
	}
	s.troupe(ctx, "run", "lb-server", "--param", "state=ready", "--limit", "compile1.lab.test")

	// 5. HAProxy lists both compilers UP.
	if st := s.haproxyStatus(); st["compile1"] != "UP" || st["compile2"] != "UP" {
		t.Errorf("haproxy: %v", st)
	}

	// 6. PuppetDB has agent1's facts, catalog and report.
	pdb := func(q string) string {
		return s.ssh("puppetdb", "curl -sfG http://127.0.0.1:8080/pdb/query/v4/"+q)
	}
	for what, q := range map[string]string{
		"facts":   `facts --data-urlencode 'query=["=","certname","agent1.lab.test"]'`,
		"catalog": `catalogs/agent1.lab.test`,
		"reports": `reports --data-urlencode 'query=["=","certname","agent1.lab.test"]'`,
	} {
		if got := pdb(q); !strings.Contains(got, `"certname":"agent1.lab.test"`) && !strings.Contains(got, `"certname" : "agent1.lab.test"`) {
			t.Errorf("PuppetDB %s of agent1: %.300s", what, got)
		}
	}

	// 7. An exported resource of one node is collected on another: the
	// PuppetDB host collects agent1's export. agent1 collects the PuppetDB
	// host's only where the lab has two PuppetDBs (its catalog then reads
	// PuppetDB); with one, it exports but collects nothing.
	if out, rc := s.agentRun("puppetdb"); rc != 0 && rc != 2 {
		t.Errorf("agent run on puppetdb: rc %d\n%s", rc, out)
	}
	if got := s.ssh("puppetdb", "cat /tmp/exported-agent1.lab.test"); !strings.Contains(got, "exported by agent1.lab.test") {
		t.Errorf("puppetdb did not collect agent1's exported file: %q", got)
	}
	s.agentRun("agent1")
	got := s.ssh("agent1", "cat /tmp/exported-puppetdb.lab.test 2>&1 || true")
	switch collects := s.l.Spec.PuppetDBs > 1; {
	case collects && !strings.Contains(got, "exported by puppetdb.lab.test"):
		t.Errorf("agent1 did not collect the PuppetDB host's exported file (two PuppetDBs): %q", got)
	case !collects && !strings.Contains(got, "No such file"):
		t.Errorf("agent1 collected an exported file (one PuppetDB: only the PuppetDB host collects): %q", got)
	}

	// 8. Compilers: the LB's name in their certificates, no CA, same code.
	var commits []string
	for _, c := range []string{"compile1", "compile2"} {
		fq := c + ".lab.test"
		san := s.ssh(c, "openssl x509 -noout -ext subjectAltName -in $(puppet config print hostcert --certname "+fq+")")
		if !strings.Contains(san, "DNS:puppet.lab.test") {
			t.Errorf("%s certificate SANs: %s", c, san)
		}
		services := s.ssh(c, "curl -sk https://"+fq+":8140/status/v1/services")
		if strings.Contains(services, `"ca":`) || !strings.Contains(services, `"server":`) && !strings.Contains(services, `"master":`) {
			t.Errorf("%s status services (want a server and no ca): %.300s", c, services)
		}
		if got := s.ssh(c, "ls "+caDir+"/ca_key.pem 2>/dev/null; true"); strings.TrimSpace(got) != "" {
			t.Errorf("%s holds a CA key: %s", c, got)
		}
		commits = append(commits, strings.TrimSpace(s.ssh(c,
			`sed -n 's/.*"signature": *"\([0-9a-f]*\)".*/\1/p' $(puppet config print codedir)/environments/production/.r10k-deploy.json`)))
	}
	head := strings.Fields(s.ssh("ca", "git ls-remote "+s.l.ControlRepoURL+" refs/heads/production"))
	if len(head) == 0 || commits[0] != head[0] || commits[1] != head[0] {
		t.Errorf("production commits: compilers %v, control repository %v", commits, head)
	}

	// 9. A second bootstrap changes nothing and is faster.
	second, changed2 := s.troupe(ctx, "run", "bootstrap")
	t.Logf("second bootstrap: %s, %d changed", second.Round(time.Second), len(changed2))
	seconds(t, "second bootstrap", second)
	record(t, "second bootstrap: changed", float64(len(changed2)), "count")
	if len(changed2) != 0 {
		t.Errorf("second bootstrap changed %d: %v", len(changed2), changed2)
	}
	if second >= first {
		t.Errorf("second bootstrap (%s) not faster than the first (%s)", second, first)
	}
	t.Logf("WALL TIME %s: lab+bootstrap+checks %s (first bootstrap %s, second %s)",
		suite, time.Since(t0).Round(time.Second), first.Round(time.Second), second.Round(time.Second))

	// Day-2 scenarios on the same site, in sequence, destructive ones last.
	// The suites share the set: each scenario runs on the suites it names
	// (TROUPE_E2E_ALL=1: every scenario on every suite).
	// TROUPE_E2E_ONLY=add-compiler,capacity runs those alone, by hand: CI
	// runs every scenario.
	all := os.Getenv("TROUPE_E2E_ALL") != ""
	only := strings.FieldsFunc(os.Getenv("TROUPE_E2E_ONLY"), func(r rune) bool { return r == ',' })
	if len(only) > 0 && os.Getenv("CI") == "true" {
		t.Fatalf("TROUPE_E2E_ONLY=%s under CI=true: CI runs every scenario", strings.Join(only, ","))
	}
	for _, sc := range scenarios {
		if !all && !slices.Contains(sc.suites, suite) {
			t.Logf("day-2 %s: on %v, not on %s (TROUPE_E2E_ALL=1 runs it here too)", sc.name, sc.suites, suite)
			continue
		}
		if len(only) > 0 && !slices.Contains(only, sc.name) {
			t.Logf("day-2 %s: not in TROUPE_E2E_ONLY", sc.name)
			continue
		}
		day2(t, s, sc.name, func(t *testing.T, s *site) { sc.run(ctx, t, s) })
	}
}

type scenario struct {
	name   string
	run    func(context.Context, *testing.T, *site)
	suites []string // the suites whose site runs it
}

// loadBalancers per suite: bookworm's site has two, sharing lb_name's
// virtual IP (keepalived), so its upgrade, add-compiler, capacity and the
// rest run on a load-balancer pair and lb-failover halts one; trixie's has
// one, the common site.
var loadBalancers = map[string]int{"bookworm": 2, "trixie": 1}

// caStandby per suite: trixie's site has a standby CA (ca2), so the CA
// scenarios that run there (ca-cert, ca-renew, ca-backup-restore,
// ca-rebuild) change a CA that pushes every change to it.
var caStandby = map[string]bool{"trixie": true}

// puppetDBs per suite: trixie's site has two PuppetDBs sharing the
// database on a host of its own (db, group postgres), and its agents'
// catalogs collect exported resources (scenario puppetdb-failover);
// bookworm's keeps one PuppetDB with PostgreSQL beside it.
var puppetDBs = map[string]int{"bookworm": 1, "trixie": 2}

var (
	both     = []string{"bookworm", "trixie"}
	bookworm = []string{"bookworm"}
	trixie   = []string{"trixie"}
)

// scenarios are the day-2 scenarios in the order they run on the site the
// bootstrap built: each starts from the state the one before left. The
// rolling upgrade, the promise every operator runs, runs on Puppet 7 and
// 8; the rest is shared between the suites, so that CI proves each once
// (a suite's scenarios must keep their order: remove-compiler removes what
// add-compiler added).
var scenarios = []scenario{
	{"upgrade", upgradeScenario, both},
	{"rollback-compiler", rollbackScenario, bookworm},
	{"upgrade-agents", upgradeAgentsScenario, bookworm},
	{"add-compiler", addCompilerScenario, bookworm},
	{"status", statusScenario, bookworm},
	{"drain-cut", drainCutScenario, bookworm},
	{"capacity", capacityScenario, bookworm},  // min_ready against the live pool, before every drain
	{"lb-reload", lbReloadScenario, bookworm}, // a reload keeps a drain, on both load balancers
	{"cert-expiry", certExpiryScenario, trixie},
	{"release", releaseScenario, trixie},      // the .deb installed and run on a lab host
	{"ca-standby", caStandbyScenario, trixie}, // every signing and revocation pushed to the standby CA
	{"webhook", webhookScenario, bookworm},
	{"remove-compiler", removeCompilerScenario, bookworm},
	{"regen-cert", regenCertScenario, bookworm},
	{"ca-cert", caCertScenario, trixie},
	{"revoke", revokeScenario, bookworm},
	{"ca-renew", caRenewScenario, trixie},
	{"ca-backup-restore", caBackupRestoreScenario, trixie},
	{"ca-rebuild", caRebuildScenario, trixie},               // every certificate new
	{"units", unitsScenario, trixie},                        // systemd's reload and restart of puppetserver
	{"puppetdb-capacity", puppetdbCapacityScenario, trixie}, // remove-puppetdb, then add-puppetdb
	{"puppetdb-failover", puppetdbFailoverScenario, trixie}, // a PuppetDB's JVM killed, then its host halted
	{"ca-failover", caFailoverScenario, trixie},             // last on trixie: the CA halted, the standby promoted
	{"kill-jvm", killJVMScenario, bookworm},                 // a killed JVM, and what its unit does
	{"lb-failover", lbFailoverScenario, bookworm},           // last on bookworm: the active load balancer halted
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// day2 runs one scenario on the site as a subtest; it stops the sequence
// when the scenario fails, since the next one starts from its end state.
func day2(t *testing.T, s *site, name string, f func(*testing.T, *site)) {
	if t.Failed() {
		t.Logf("%s: skipped, the site is not in a known state", name)
		return
	}
	t0 := time.Now()
	sub := *s
	if !t.Run(name, func(t *testing.T) { sub.t = t; f(t, &sub) }) {
		t.FailNow()
	}
	s.inv = sub.inv // a scenario may change the site's inventory (add-compiler)
	t.Logf("WALL TIME %s: %s", name, time.Since(t0).Round(time.Second))
	seconds(t, "scenario "+name, time.Since(t0))
}

// event is one NDJSON event of troupe --format json.
type event struct {
	Time     time.Time     `json:"time"`
	Kind     string        `json:"event"`
	Step     string        `json:"step"`
	Host     string        `json:"host"`
	Hosts    []string      `json:"hosts"`
	Status   string        `json:"status"`
	Reason   string        `json:"reason"`
	Text     string        `json:"text"`
	Error    string        `json:"error"`
	Stderr   string        `json:"stderr"`
	Duration time.Duration `json:"duration_ns"`
}

// run is one troupe invocation: its events, exit code and wall time.
type run struct {
	events []event
	code   int
	wall   time.Duration
	stderr string
}

// with returns the host results of one status ("changed", "failed") as
// "step host" pairs, failures with their error.
func (r run) with(status string) []string {
	var out []string
	for _, e := range r.events {
		if e.Kind == "host_result" && e.Status == status {
			if status == "failed" {
				out = append(out, fmt.Sprintf("%s %s: %s\n%s", e.Step, e.Host, e.Error, e.Stderr))
			} else {
				out = append(out, e.Step+" "+e.Host)
			}
		}
	}
	return out
}

// troupe runs the binary with --format json and returns the wall time and
// the "step host" pairs that changed; any failure fails the test.
func (s *site) troupe(ctx context.Context, args ...string) (time.Duration, []string) {
	s.t.Helper()
	r := s.troupeRun(ctx, args...)
	if r.code != 0 {
		s.t.Fatalf("troupe %s: exit %d (%s)\n%s\n%s%s", strings.Join(args[:2], " "), r.code, r.wall.Round(time.Second),
			strings.Join(r.with("failed"), "\n"), r.stderr, s.sshdJournals(r.stderr))
	}
	return r.wall, r.with("changed")
}

// sshdJournals is the sshd journal of every host that an error text says
// refused or dropped an SSH handshake, read from the host's disk.
func (s *site) sshdJournals(text string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, "handshake") {
			continue
		}
		for _, h := range s.l.Hosts {
			if !seen[h.Name] && strings.Contains(line, h.Name) {
				seen[h.Name] = true
				fmt.Fprintf(&b, "\n-- %s: the last lines of ssh.service's journal --\n%s", h.Short, s.l.Journal(h.Short, "ssh.service", 30))
			}
		}
	}
	return b.String()
}

// troupeRun runs the binary with --format json and returns what it did,
// whatever its exit code.
func (s *site) troupeRun(ctx context.Context, args ...string) run {
	s.t.Helper()
	args = append(args, "-i", s.inv, "--format", "json", "--state-dir", s.dir, "--color", "never")
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.dir // embedded plans and roles, nothing from the working directory
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := run{wall: time.Since(t0), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		// troupe's own share: CPU it used, against the wall time it spent
		// mostly waiting on remote commands.
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		s.t.Logf("troupe %s: wall %s, troupe's own CPU %s (%.1f%%)", strings.Join(args[:2], " "),
			r.wall.Round(100*time.Millisecond), cpu.Round(10*time.Millisecond), 100*cpu.Seconds()/r.wall.Seconds())
		r.code = cmd.ProcessState.ExitCode()
	} else if err != nil {
		s.t.Fatalf("troupe %s: %v", strings.Join(args[:2], " "), err)
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			r.events = append(r.events, e)
		}
	}
	return r
}

// ssh runs a command as root on a lab host and returns its output. A
// command that fails fails the test: a check that reads an answer must not
// pass on the empty output of a query that did not work. A command whose
// failure is an answer goes through sshRC.
func (s *site) ssh(host, cmd string) string {
	s.t.Helper()
	out, rc := s.sshRC(host, cmd)
	if rc != 0 {
		s.t.Errorf("on %s: %s: exit %d\n%.2000s", host, cmd, rc, out)
	}
	return out
}

// put writes content to path on a lab host (root-only, in a root-only
// directory it makes), through ssh's standard input.
func (s *site) put(host, path, content string) {
	s.t.Helper()
	cmd := s.l.SSHCommand(host, "install -d -m 0700 "+filepath.Dir(path)+" && umask 077 && cat > "+path)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("writing %s on %s: %v\n%s", path, host, err, out)
	}
}

// sshRC runs a command as root on a lab host and returns its output and
// exit code (-1: ssh itself did not run).
func (s *site) sshRC(host, cmd string) (string, int) {
	s.t.Helper()
	out, err := s.l.SSHCommand(host, cmd).CombinedOutput()
	return string(out), exitCode(err)
}

// agentRun runs `puppet agent -t` on host and returns its output and exit code.
func (s *site) agentRun(host string) (string, int) {
	s.t.Helper()
	c := s.l.SSHCommand(host, "puppet agent --test --detailed-exitcodes")
	out, err := c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

var compiledRe = regexp.MustCompile(`compiled by ([a-z0-9.-]+) for`)

func compiledBy(t *testing.T, out string) string {
	m := compiledRe.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("no 'compiled by' notice in the agent's output:\n%s", out)
		return ""
	}
	return m[1]
}

// showStat is HAProxy's `show stat` through its admin socket on the LB.
const showStat = "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock"

// lbSample reads HAProxy's view of the compilers now, from the load
// balancer the agents' connections go through.
func (s *site) lbSample() lbSample {
	smp, _ := parseLBStat(s.ssh(s.trafficLB(), showStat))
	return smp
}

// trafficLB is the load balancer the agents' connections go through: the
// one that holds lb_name's virtual IP on a site with two (the other sees no
// sessions, and its samples would prove nothing about them), else the one.
func (s *site) trafficLB() string {
	s.t.Helper()
	if *s.traffic != "" {
		return *s.traffic
	}
	lbs := s.loadBalancers()
	if s.l.VIP == "" || len(lbs) < 2 {
		*s.traffic = lbs[0]
		return lbs[0]
	}
	holders := s.vipHolders(lbs)
	if len(holders) != 1 {
		s.t.Fatalf("the VIP %s is on %v: want exactly one load balancer", s.l.VIP, holders)
	}
	*s.traffic = holders[0]
	return holders[0]
}

// haproxyStatus maps compiler → status (UP, DOWN, DRAIN, MAINT) from `show stat`.
func (s *site) haproxyStatus() map[string]string { return s.lbSample().status }

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
