package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/puppet"
)

// upgradeScenario is issue 8's MUST SHOW on the site the bootstrap built:
// a rolling upgrade under agent load, with a compiler that cannot pass its
// gate on the way (fixed, then --resume), then a second upgrade that
// changes and drains nothing.
func upgradeScenario(ctx context.Context, t *testing.T, s *site) {
	// The lab's upgrade repository (puppetserver, puppet-agent, puppetdb and
	// the termini rebuilt as <version>+troupe1) becomes a package source.
	before := map[string]string{}
	serverPackages := s.serverPackages()
	for h := range serverPackages {
		s.ssh(h, "echo 'deb [trusted=yes] "+s.l.UpgradeRepoURL+" ./' > /etc/apt/sources.list.d/troupe-upgrade.list")
		before[h] = s.ssh(h, "dpkg-query -W "+serverPackages[h])
	}

	// The preflight refuses, before anything changes, what it says it does.
	preflightRefuses(ctx, t, s)

	// The fault: compile2's next JVM cannot start (an unknown JVM option in
	// JAVA_ARGS, read only when a JVM starts: the reload that turns soft
	// writes on for PuppetDB's restart does not read it, the restart after
	// the package upgrade does). Preflight still sees a healthy site.
	const envFile, bad = "/etc/default/puppetserver", "-XX:+TroupeE2EBroken "
	s.ssh("compile2", `sed -i 's|^JAVA_ARGS="|&`+bad+`|' `+envFile+` && grep -qF -- '`+bad+`' `+envFile)

	// --noop first: the whole upgrade shown, nothing changed on any host
	// (its configuration, its packages, HAProxy's pool).
	hosts := []string{"ca", "puppetdb", "compile1", "compile2", "lb"}
	was := s.fingerprints(hosts)
	noop := s.troupeRun(ctx, "run", "upgrade", "--noop")
	if noop.code != 0 || len(noop.with("failed")) > 0 {
		t.Fatalf("upgrade --noop: exit %d\n%s\n%s", noop.code, strings.Join(noop.with("failed"), "\n"), noop.stderr)
	}
	if plan := messages(noop, "versions"); !strings.Contains(plan, "+troupe1") {
		t.Errorf("upgrade --noop does not show versions from → to: %q", plan)
	}
	if len(noop.with("changed")) == 0 {
		t.Errorf("upgrade --noop reports nothing it would change")
	}
	for h, fp := range s.fingerprints(hosts) {
		if fp != was[h] {
			t.Errorf("upgrade --noop changed %s:\nbefore %s\nafter  %s", h, was[h], fp)
		}
	}

	dropped := softWrites(s)
	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)

	first := s.troupeRun(ctx, "run", "upgrade")
	t.Logf("upgrade with compile2 broken: exit %d in %s", first.code, first.wall.Round(time.Second))
	seconds(t, "upgrade: fault run to its stop", first.wall)
	failed := first.with("failed")
	if first.code != 1 || len(failed) != 1 || !strings.Contains(failed[0], "compile2.lab.test") {
		t.Fatalf("want exit 1 with compile2 failed, got exit %d, failed: %v\n%s", first.code, failed, first.stderr)
	}
	t.Logf("failed as arranged: %s", oneLine(failed[0]))
	if st := s.haproxyStatus(); st["compile2"] != "MAINT" || st["compile1"] != "UP" {
		t.Errorf("after compile2 failed its restart: haproxy %v, want compile2 MAINT and compile1 UP", st)
	}
	order := blockOrder(first, "ca", "soft-writes-on", "puppetdb", "compilers")
	if !slices.Equal(order, []string{"ca", "soft-writes-on", "puppetdb", "compilers"}) {
		t.Errorf("block order %v, want CA → soft writes on → PuppetDB → compilers", order)
	}
	both := []string{"compile1.lab.test", "compile2.lab.test"}
	// soft writes only for a single PuppetDB's restart; with two, none
	if got, one := drained(first, "soft-writes-on/"), s.l.Spec.PuppetDBs == 1; one && !slices.Equal(got, both) || !one && len(got) > 0 {
		t.Errorf("compilers drained in turn for soft writes: %v (%d PuppetDBs)", got, s.l.Spec.PuppetDBs)
	}
	if got := drained(first, "compilers/"); !slices.Equal(got, both) {
		t.Errorf("compilers drained in turn for the upgrade: %v", got)
	}

	// The fix, then --resume: compile2 is restarted, gated and put back.
	s.ssh("compile2", `sed -i 's|`+bad+`||' `+envFile)
	resumed := s.troupeRun(ctx, "run", "upgrade", "--resume")
	if resumed.code != 0 {
		t.Fatalf("upgrade --resume: exit %d\n%s\n%s", resumed.code, strings.Join(resumed.with("failed"), "\n"), resumed.stderr)
	}
	t.Logf("upgrade --resume: %s, %d changed", resumed.wall.Round(time.Second), len(resumed.with("changed")))
	seconds(t, "upgrade: --resume", resumed.wall)
	if got := drained(resumed, ""); len(got) != 0 {
		t.Errorf("--resume drained %v again", got)
	}

	lbSamples := lb.stop()
	runs := agents.stop()
	t.Logf("PER COMPILER (fault run + resume): %s", perHost("compilers/", first, resumed))

	// Every server has the new versions, every package that moved.
	for h, was := range before {
		now := strings.Split(strings.TrimSpace(s.ssh(h, "dpkg-query -W "+serverPackages[h])), "\n")
		if len(now) != len(strings.Fields(serverPackages[h])) {
			t.Errorf("%s: %d of %s installed: %q", h, len(now), serverPackages[h], now)
		}
		for _, l := range now {
			if f := strings.Fields(l); len(f) != 2 || !strings.HasSuffix(f[1], "+troupe1") {
				t.Errorf("%s: %q after the upgrade (was: %q)", h, l, was)
			}
		}
	}
	if st := s.haproxyStatus(); st["compile1"] != "UP" || st["compile2"] != "UP" {
		t.Errorf("after the upgrade: haproxy %v", st)
	}

	// What the load balancer and the agents saw.
	lbReport(t, lbSamples)
	pdb := window("puppetdb", first, resumed)
	windows := []riskWindow{
		{"compile1 upgraded", hostWindow(first, "compilers/", "compile1.lab.test")},
		{"compile2 upgraded, failed, fixed, resumed", [2]time.Time{
			hostWindow(first, "compilers/", "compile2.lab.test")[0], hostWindow(resumed, "compilers/", "compile2.lab.test")[1]}},
	}
	if s.l.Spec.PuppetDBs == 1 {
		windows = append(windows, riskWindow{"PuppetDB restart", pdb})
	} else {
		// each PuppetDB down in turn (from its stop to running), never both
		var prev [2]time.Time
		for _, h := range s.puppetdbs() {
			w := resultsWindow(func(e event) bool {
				return e.Host == h+".lab.test" && e.Status != "skipped" && strings.HasPrefix(e.Step, "puppetdb/") && !strings.HasSuffix(e.Step, "/download")
			}, first, resumed)
			if !prev[1].IsZero() && w[0].Before(prev[1]) {
				t.Errorf("%s went down at %s, before the PuppetDB before it was back (%s): not one at a time", h, w[0].Format("15:04:05.0"), prev[1].Format("15:04:05.0"))
			}
			windows, prev = append(windows, riskWindow{h + " restart (the other serving)", w}), w
		}
	}
	agentReport(t, runs, windows...)

	// Soft writes were for PuppetDB's restart only: the site's setting is
	// back on every compiler, and PuppetDB stores the agents' data again
	// (facts of a run that started after the restart).
	for _, c := range s.compilers() {
		if got := s.ssh(c, "grep -E '^ *soft_write_failure' /etc/puppet/puppetdb.conf"); !strings.Contains(got, "false") {
			t.Errorf("%s: puppetdb.conf after the upgrade: %q, want soft_write_failure = false", c, got)
		}
	}
	t.Logf("writes to PuppetDB the compilers logged as failed (soft) during the upgrade: %d", softWrites(s)-dropped)
	record(t, "upgrade: PuppetDB writes dropped (soft)", float64(softWrites(s)-dropped), "count")
	if n := softWrites(s) - dropped; s.l.Spec.PuppetDBs > 1 && n != 0 {
		t.Errorf("%d PuppetDB writes dropped with two PuppetDBs (soft writes stay off; a failed write would fail the run)", n)
	}
	seconds(t, "upgrade: PuppetDB down", pdb[1].Sub(pdb[0]))
	for _, a := range []string{"agent1", "agent2"} {
		if ts := factsTimestamp(s, a+".lab.test"); !ts.After(pdb[1]) {
			t.Errorf("%s: facts in PuppetDB from %s, not after its restart (%s)", a, ts.Format(time.RFC3339), pdb[1].Format(time.RFC3339))
		}
	}

	// A second upgrade: nothing changes, nothing is drained.
	again := s.troupeRun(ctx, "run", "upgrade")
	if again.code != 0 || len(again.with("changed")) != 0 || len(drained(again, "")) != 0 {
		t.Errorf("second upgrade: exit %d, changed %v, drained %v", again.code, again.with("changed"), drained(again, ""))
	}
	t.Logf("second upgrade: %s, %d changed, nothing drained", again.wall.Round(time.Second), len(again.with("changed")))
	seconds(t, "upgrade: second run", again.wall)
	record(t, "upgrade: second run changed", float64(len(again.with("changed"))), "count")

	// Going back is refused: bookworm's own version is offered still.
	var orig []string // puppetserver's version before the upgrade
	for _, l := range strings.Split(before["compile1"], "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "puppetserver" {
			orig = f
		}
	}
	if orig == nil {
		t.Fatalf("no puppetserver in compile1's packages before the upgrade: %q", before["compile1"])
	}
	down := s.troupeRun(ctx, "run", "upgrade", "-p", "server_version="+orig[1])
	if down.code != 1 || len(down.with("changed")) != 0 || !strings.Contains(strings.Join(down.with("failed"), ""), "would be a downgrade") {
		t.Errorf("upgrade to %s %s: exit %d, changed %v, failed %v (want exit 1 at the preflight: a downgrade)",
			orig[0], orig[1], down.code, down.with("changed"), down.with("failed"))
	}
}

// serverPackages is what the upgrade moves on each server of the lab: with
// a standby CA, its packages too (they move with the CA's, its
// puppetserver masked).
func (s *site) serverPackages() map[string]string {
	m := map[string]string{
		"ca":       "puppetserver puppet-agent",
		"puppetdb": "puppetdb puppet-agent",
		"compile1": "puppetserver puppet-agent puppet-terminus-puppetdb",
		"compile2": "puppetserver puppet-agent puppet-terminus-puppetdb",
	}
	if s.l.Spec.CAStandby {
		m["ca2"] = "puppetserver puppet-agent puppet-terminus-puppetdb"
	}
	for _, h := range s.puppetdbs()[1:] {
		m[h] = m["puppetdb"]
	}
	return m
}

// puppetdbs are the lab's PuppetDB hosts (short names), the first first.
func (s *site) puppetdbs() []string {
	out := []string{"puppetdb"}
	for i := 2; i <= s.l.Spec.PuppetDBs; i++ {
		out = append(out, fmt.Sprintf("puppetdb%d", i))
	}
	return out
}

// fingerprints is, per host, a digest of what a run that changes nothing
// must leave alone: every file under /etc (path, mode, owner, content),
// the installed packages and their state, and on the LB HAProxy's view of
// the compilers (state and admin state).
func (s *site) fingerprints(hosts []string) map[string]string {
	s.t.Helper()
	const etc = "find /etc -xdev -printf '%p %m %U %G %l\\n' | sort | sha256sum | cut -c1-16;" +
		" find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16;" +
		" dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sha256sum | cut -c1-16"
	out := map[string]string{}
	for _, h := range hosts {
		fp := strings.Join(strings.Fields(s.ssh(h, etc)), " ")
		if h == "lb" {
			st := s.lbSample().status
			fp += fmt.Sprintf(" pool %v", st)
		}
		out[h] = fp
	}
	return out
}

// preflightRefuses: the upgrade's read-only preflight stops the run, with
// nothing changed and nothing drained, for a batch that would leave fewer
// than min_ready compilers UP, a held package and a version the package
// source does not offer; each refusal names its cause.
func preflightRefuses(ctx context.Context, t *testing.T, s *site) {
	t.Helper()
	refused := func(what, cause string, args ...string) {
		t.Helper()
		r := s.troupeRun(ctx, append([]string{"run", "upgrade"}, args...)...)
		failed := strings.Join(r.with("failed"), "\n")
		if r.code != 1 || len(r.with("changed")) != 0 || len(drained(r, "")) != 0 || !strings.Contains(failed, cause) {
			t.Errorf("upgrade with %s: exit %d, changed %v, drained %v, failed:\n%s\nwant exit 1 at the preflight naming %q",
				what, r.code, r.with("changed"), drained(r, ""), failed, cause)
		} else {
			t.Logf("PREFLIGHT refuses %s in %s: %s", what, r.wall.Round(100*time.Millisecond), oneLine(failed))
		}
	}
	refused("min_ready 2 of 2 compilers, batch 1", "fewer than min_ready 2", "-p", "min_ready=2")
	refused("a version not offered", "is not offered by the package source", "-p", "server_version=99.0.0-1")
	s.ssh("compile1", "apt-mark hold puppetserver")
	refused("puppetserver held on compile1", "puppetserver is held")
	s.ssh("compile1", "apt-mark unhold puppetserver")
}

// softWrites counts the PuppetDB commands the compilers' logs say failed:
// with soft_write_failure on, what a run lost instead of failing.
func softWrites(s *site) int {
	n := 0
	for _, c := range s.compilers() {
		k, _ := strconv.Atoi(strings.TrimSpace(s.ssh(c, "grep -c \"Failed to execute '/pdb/cmd/v1\" /var/log/puppetserver/puppetserver.log || true")))
		n += k
	}
	return n
}

// factsTimestamp is when PuppetDB last stored certname's facts (zero when
// it has none).
func factsTimestamp(s *site, certname string) time.Time {
	out := s.ssh("puppetdb", "curl -sf http://127.0.0.1:8080/pdb/query/v4/nodes/"+certname)
	m := regexp.MustCompile(`"facts_timestamp"\s*:\s*"([^"]+)"`).FindStringSubmatch(out)
	if m == nil {
		return time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, m[1])
	return ts
}

// perHost sums, per host, the time of the steps under prefix over runs,
// with the longest steps named: a compiler's time in a rolling upgrade.
func perHost(prefix string, runs ...run) string {
	total := map[string]time.Duration{}
	longest := map[string]event{}
	for _, r := range runs {
		for _, e := range r.events {
			if e.Kind != "host_result" || !strings.HasPrefix(e.Step, prefix) || e.Status == "skipped" {
				continue
			}
			total[e.Host] += e.Duration
			if e.Duration > longest[e.Host].Duration {
				longest[e.Host] = e
			}
		}
	}
	var out []string
	for _, h := range slices.Sorted(maps.Keys(total)) {
		out = append(out, fmt.Sprintf("%s %s (longest: %s %s)", h, total[h].Round(time.Second),
			longest[h].Step, longest[h].Duration.Round(time.Second)))
	}
	return strings.Join(out, "; ")
}

// messages joins the result messages of a step.
func messages(r run, stepID string) string {
	var out []string
	for _, e := range r.events {
		if e.Kind == "host_result" && e.Step == stepID {
			out = append(out, e.Host+": "+e.Reason)
		}
	}
	return strings.Join(out, "\n")
}

// blockOrder lists the given top-level blocks in the order they started.
func blockOrder(r run, ids ...string) []string {
	var out []string
	for _, e := range r.events {
		if e.Kind == "step_start" && slices.Contains(ids, e.Step) && !slices.Contains(out, e.Step) {
			out = append(out, e.Step)
		}
	}
	return out
}

// drained lists the compilers a run drained (a drain step under prefix
// ran on them; "" is the whole plan).
func drained(r run, prefix string) []string {
	var out []string
	for _, e := range r.events {
		if e.Kind == "host_result" && strings.HasPrefix(e.Step, prefix) && strings.HasSuffix(e.Step, "/leave/drain") && e.Status != "skipped" {
			out = append(out, e.Host)
		}
	}
	return out
}

// window is when the steps of a block really ran (not skipped by --resume),
// over the given runs: from the start of the first such step to the end of
// the last.
func window(id string, runs ...run) [2]time.Time {
	// Nothing is down while packages download (before the stop).
	return resultsWindow(func(e event) bool {
		return e.Status != "skipped" && strings.HasPrefix(e.Step, id+"/") && !strings.HasSuffix(e.Step, "/download")
	}, runs...)
}

// agentRun is one `puppet agent -t` of the agent loop.
type agentRun struct {
	agent      string
	start, end time.Time
	rc         int
	by         string // compiled by
	errors     string // the run's Error: lines
}

// failed: an exit code other than 0 or 2, any Error: line, or a cached
// catalog used because the compile failed.
func (r agentRun) failed() bool { return (r.rc != 0 && r.rc != 2) || r.errors != "" }

type agentLoop struct {
	stopc   chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	runs    []agentRun
	running map[string]*exec.Cmd // each agent's run under way, for abort
}

// errorLine: a run that logs an error counts as failed even when it exits
// 0, and so does a warning about a connection that broke (a pluginsync or
// file request that hit a dead compiler).
var errorLine = regexp.MustCompile(`(?m)^(Error: .*|.*Using cached catalog.*|Warning: .*(Connection refused|Connection reset|end of file|EOFError|Failed to open TCP).*)$`)

// startAgentLoop runs `puppet agent -t` through the load balancer on each
// agent, one run after another with a short pause (a busy site's agents
// arrive all the time; back to back, two loops would starve the lab's two
// CPUs and slow every JVM start), until stop.
func startAgentLoop(t *testing.T, s *site, agents ...string) *agentLoop {
	l := &agentLoop{stopc: make(chan struct{}), running: map[string]*exec.Cmd{}}
	for _, a := range agents {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				r := agentRun{agent: a, start: time.Now()}
				cmd := s.l.SSHCommand(a, "puppet agent --test --detailed-exitcodes --color=false")
				var buf bytes.Buffer
				cmd.Stdout, cmd.Stderr = &buf, &buf
				l.mu.Lock() // started under the lock: abort sees only started runs
				err := cmd.Start()
				if err == nil {
					l.running[a] = cmd
				}
				l.mu.Unlock()
				if err == nil {
					err = cmd.Wait()
				}
				l.mu.Lock()
				delete(l.running, a)
				l.mu.Unlock()
				out := buf.Bytes()
				r.end = time.Now()
				if ee, ok := err.(*exec.ExitError); ok {
					r.rc = ee.ExitCode()
				} else if err != nil {
					r.rc = -1
				}
				if m := compiledRe.FindStringSubmatch(string(out)); m != nil {
					r.by = m[1]
				}
				r.errors = strings.Join(errorLine.FindAllString(string(out), -1), "\n")
				l.mu.Lock()
				l.runs = append(l.runs, r)
				l.mu.Unlock()
				select {
				case <-l.stopc:
					return
				// A pause between runs: two agents that run back to back
				// (a run takes 10-25 s here) keep both CPUs of the lab
				// machine busy, and every JVM restart then takes 3× as long.
				case <-time.After(8 * time.Second):
				}
			}
		}()
	}
	return l
}

// snapshot is the runs finished so far.
func (l *agentLoop) snapshot() []agentRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]agentRun(nil), l.runs...)
}

func (l *agentLoop) stop() []agentRun {
	close(l.stopc)
	l.wg.Wait()
	return l.runs
}

// abort stops the loop without waiting for the runs under way: their ssh is
// killed. For a test that fails while the agents cannot reach the site (a
// run then waits minutes on its connect timeouts).
func (l *agentLoop) abort() {
	close(l.stopc)
	l.mu.Lock()
	for _, c := range l.running {
		c.Process.Kill()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// agentReport logs what the agents saw and fails on any failed run, and
// unless runs crossed each of the windows in which one could have failed
// (mustCross). With one PuppetDB, the upgrade's PuppetDB window passes
// because the upgrade turns the compilers' soft_write_failure on for its
// restart and the agents' catalogs do not read PuppetDB; with two (trixie)
// the agents' catalogs read PuppetDB, soft writes stay off, and the
// PuppetDBs restart one at a time.
func agentReport(t *testing.T, runs []agentRun, windows ...riskWindow) {
	t.Helper()
	var failed int
	by := map[string]int{}
	for _, r := range runs {
		if r.failed() {
			failed++
			t.Errorf("failed agent run on %s (%s → %s, rc %d, compiled by %q):\n%s", r.agent,
				r.start.Format("15:04:05"), r.end.Format("15:04:05"), r.rc, r.by, r.errors)
			continue
		}
		by[r.by]++
	}
	t.Logf("AGENTS: %d runs, %d failed; compiled by %v", len(runs), failed, by)
	record(t, "agent runs", float64(len(runs)), "count")
	record(t, "agent runs failed", float64(failed), "count")
	mustCross(t, runs, windows...)
}

// lbSample is HAProxy's view of the compilers at one moment.
type lbSample struct {
	at     time.Time
	status map[string]string // UP, DOWN, DRAIN, MAINT, …
	stot   map[string]int    // sessions handed to the server so far
	scur   map[string]int    // current sessions
}

type lbSampler struct {
	stopc   chan struct{}
	done    chan struct{}
	samples []lbSample
}

// startLBSampler reads `show stat` every half second from the HAProxy the
// agents' connections go through.
func startLBSampler(s *site) *lbSampler {
	l := &lbSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	lb := s.trafficLB()
	go func() {
		defer close(l.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			out, _ := s.l.SSHCommand(lb, showStat).Output()
			if smp, ok := parseLBStat(string(out)); ok {
				smp.at = time.Now()
				l.samples = append(l.samples, smp)
			}
			select {
			case <-l.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

func (l *lbSampler) stop() []lbSample {
	close(l.stopc)
	<-l.done
	return l.samples
}

func parseLBStat(out string) (lbSample, bool) {
	smp := lbSample{status: map[string]string{}, stot: map[string]int{}, scur: map[string]int{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "compilers" && f[1] != "BACKEND" && f[1] != "FRONTEND" {
			smp.status[f[1]] = f[17]
			smp.stot[f[1]], _ = strconv.Atoi(f[7])
			smp.scur[f[1]], _ = strconv.Atoi(f[4])
		}
	}
	return smp, len(smp.status) > 0
}

// maxSampleGap bounds the time between two HAProxy samples (one every half
// second, each an SSH round trip to the LB).
const maxSampleGap = 5 * time.Second

// lbReport fails when HAProxy ever had no compiler UP, or handed a new
// session to a compiler that was drained or in maintenance (its session
// total grew between two samples that both saw it out of the pool).
func lbReport(t *testing.T, samples []lbSample) {
	t.Helper()
	var gaps []string
	minUp := -1
	for i, smp := range samples {
		up := 0
		for _, st := range smp.status {
			// "UP 1/3": up, with a failed check counted (or just after a
			// reload, before the first check); "DOWN 1/2": still down.
			if strings.HasPrefix(st, "UP") {
				up++
			}
		}
		if minUp < 0 || up < minUp {
			minUp = up
		}
		if up == 0 {
			t.Errorf("%s: no compiler UP in HAProxy: %v", smp.at.Format("15:04:05.0"), smp.status)
		}
		if i == 0 {
			continue
		}
		prev := samples[i-1]
		for srv, st := range smp.status {
			out := func(s string) bool { return strings.HasPrefix(s, "DRAIN") || strings.HasPrefix(s, "MAINT") }
			if out(st) && out(prev.status[srv]) && smp.stot[srv] > prev.stot[srv] {
				t.Errorf("%s: %s got %d new session(s) while %s", smp.at.Format("15:04:05.0"), srv, smp.stot[srv]-prev.stot[srv], st)
			}
		}
		if d := smp.at.Sub(prev.at); d > 2*time.Second {
			gaps = append(gaps, fmt.Sprintf("%s at %s", d.Round(100*time.Millisecond), smp.at.Format("15:04:05")))
			// Between two samples the pool was not seen: a gap longer than a
			// compiler's drain-to-maint takes would let "never fewer than 1
			// UP" pass unobserved.
			if d > maxSampleGap {
				t.Errorf("HAProxy not sampled for %s before %s (bound %s): the pool was not watched", d.Round(100*time.Millisecond), smp.at.Format("15:04:05.0"), maxSampleGap)
			}
		}
	}
	t.Logf("HAPROXY: %d samples, fewest compilers UP at once: %d; gaps over 2 s: %v", len(samples), minUp, gaps)
	record(t, "HAProxy samples", float64(len(samples)), "count")
	record(t, "HAProxy: fewest compilers UP at once", float64(minUp), "count")
	if len(samples) < 10 {
		t.Errorf("only %d HAProxy samples", len(samples))
	}
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// addCompilerScenario: compile3 joins the pool under agent load, through
// the full inventory and --limit, without a restart of the CA.
func addCompilerScenario(ctx context.Context, t *testing.T, s *site) {
	s.ssh("compile3", "echo 'deb [trusted=yes] "+s.l.UpgradeRepoURL+" ./' > /etc/apt/sources.list.d/troupe-upgrade.list")
	caPID := strings.TrimSpace(s.ssh("ca", "pgrep -f '[p]uppetserver.jar' | head -1"))
	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)

	s.inv = s.l.Inventory // compile3 is a compiler from now on
	r := s.troupeRun(ctx, "run", "add-compiler", "--limit", "compile3.lab.test")
	if r.code != 0 {
		t.Fatalf("add-compiler: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("add-compiler: %s, %d changed", r.wall.Round(time.Second), len(r.with("changed")))
	seconds(t, "add-compiler", r.wall)
	if st := s.haproxyStatus(); st["compile1"] != "UP" || st["compile2"] != "UP" || st["compile3"] != "UP" {
		t.Errorf("after add-compiler: haproxy %v", st)
	}
	// leastconn sends the next runs to the compiler with the fewest sessions.
	deadline := time.Now().Add(3 * time.Minute)
	for !compiledByHost(agents, "compile3.lab.test") && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	lbReport(t, lb.stop())
	runs := agents.stop()
	agentReport(t, runs, riskWindow{"compile3 joins (HAProxy reloaded)", span(r)})
	if !compiledByHost(agents, "compile3.lab.test") {
		t.Errorf("no agent run was compiled by compile3 within 3 minutes of add-compiler")
	}
	if now := strings.TrimSpace(s.ssh("ca", "pgrep -f '[p]uppetserver.jar' | head -1")); now != caPID || now == "" {
		t.Errorf("the CA's puppetserver JVM changed: pid %q before, %q after", caPID, now)
	}
}

func compiledByHost(l *agentLoop, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		if r.by == host && !r.failed() {
			return true
		}
	}
	return false
}

// removeCompilerScenario: compile3, moved out of the compilers group,
// leaves the site under agent load: refused without --limit, then drained,
// out of HAProxy's configuration, stopped, its certificate revoked and
// cleaned on the CA and its node deactivated in PuppetDB; a second run
// changes nothing.
func removeCompilerScenario(ctx context.Context, t *testing.T, s *site) {
	const old = "compile3"
	fq := old + ".lab.test"
	serial := strings.TrimSpace(s.ssh("ca", "openssl x509 -noout -serial -in "+caDir+"/signed/"+fq+".pem"))
	// from the site's inventory as the scenarios before left it (names they
	// added stay); s.dir lives as long as the suite
	s.inv = spareInventory(t, s.dir, s.inv, old)

	if r := s.troupeRun(ctx, "run", "remove-compiler"); r.code != 1 || len(r.with("changed")) != 0 {
		t.Fatalf("remove-compiler without --limit: exit %d, changed %v (want exit 1, refused by the preflight)", r.code, r.with("changed"))
	}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)
	r := s.troupeRun(ctx, "run", "remove-compiler", "--limit", fq)
	// the removal is quick: let the agents run on the smaller pool too
	for deadline := time.Now().Add(3 * time.Minute); len(agents.snapshot()) < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	lbReport(t, lb.stop())
	agentReport(t, agents.stop(), riskWindow{"compile3 drained and removed", span(r)})
	if r.code != 0 {
		t.Fatalf("remove-compiler: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("remove-compiler: %s, %d changed", r.wall.Round(time.Second), len(r.with("changed")))
	seconds(t, "remove-compiler", r.wall)

	if st := s.haproxyStatus(); len(st) != 2 || st["compile1"] != "UP" || st["compile2"] != "UP" {
		t.Errorf("HAProxy after remove-compiler: %v (want compile1 and compile2 UP, no %s)", st, old)
	}
	if got := s.ssh(old, "pgrep -f '[p]uppetserver.jar' || echo none"); strings.TrimSpace(got) != "none" {
		t.Errorf("puppetserver still runs on %s: %s", old, got)
	}
	signed := func(name string) string {
		return strings.TrimSpace(s.ssh("ca", "test -e "+caDir+"/signed/"+name+".pem && echo signed || echo absent"))
	}
	if got := signed(fq); got != "absent" {
		t.Errorf("%s's certificate on the CA: %s, want absent", old, got)
	}
	if got := signed("compile1.lab.test"); got != "signed" {
		t.Errorf("compile1's certificate on the CA: %s (the check of %s's absence reads the wrong place)", got, old)
	}
	// serial=0A → the CRL lists 0A as revoked
	if _, hex, ok := strings.Cut(serial, "="); !ok || !strings.Contains(
		s.ssh("ca", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem"), "Serial Number: "+hex) {
		t.Errorf("the CA's CRL does not revoke %s (%s)", old, serial)
	}
	// Deactivated: PuppetDB still knows the node (node_state any) and gives
	// it a deactivation time; compile1, the control, has none.
	deactivated := func(certname string) string {
		var nodes []struct {
			Certname    string  `json:"certname"`
			Deactivated *string `json:"deactivated"`
		}
		out := s.ssh("puppetdb", `curl -sfG http://127.0.0.1:8080/pdb/query/v4/nodes --data-urlencode 'query=["and",["=","certname","`+certname+`"],["=","node_state","any"]]'`)
		if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 {
			t.Errorf("PuppetDB's node %s: %v, %d nodes in %q", certname, err, len(nodes), out)
			return "?"
		}
		if nodes[0].Deactivated == nil {
			return "active"
		}
		return "deactivated"
	}
	if got := deactivated(fq); got != "deactivated" {
		t.Errorf("%s in PuppetDB: %s, want deactivated", old, got)
	}
	if got := deactivated("compile1.lab.test"); got != "active" {
		t.Errorf("compile1 in PuppetDB: %s, want active", got)
	}
	again := s.troupeRun(ctx, "run", "remove-compiler", "--limit", fq)
	if again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("a second remove-compiler: exit %d, changed %v", again.code, again.with("changed"))
	}
}

// upgradeAgentsScenario: after the servers, the agents in batches of 50%
// (one agent at a time here), each gated by a noop run through the site; a
// second run changes nothing.
func upgradeAgentsScenario(ctx context.Context, t *testing.T, s *site) {
	agents := []string{"agent1", "agent2"}
	for _, a := range agents {
		s.ssh(a, "echo 'deb [trusted=yes] "+s.l.UpgradeRepoURL+" ./' > /etc/apt/sources.list.d/troupe-upgrade.list")
	}
	r := s.troupeRun(ctx, "run", "upgrade-agents", "--param", "batch=50%")
	if r.code != 0 {
		t.Fatalf("upgrade-agents: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("upgrade-agents: %s, %d changed", r.wall.Round(time.Second), len(r.with("changed")))
	seconds(t, "upgrade-agents", r.wall)
	// one batch at a time: an agent's gate passes before the next agent's package moves
	var order []string
	for _, e := range r.events {
		if e.Kind == "host_result" && (e.Step == "agents/package" || e.Step == "agents/gate") {
			order = append(order, e.Step+" "+e.Host)
		}
	}
	if want := []string{"agents/package agent1.lab.test", "agents/gate agent1.lab.test",
		"agents/package agent2.lab.test", "agents/gate agent2.lab.test"}; !slices.Equal(order, want) {
		t.Errorf("batches: %v, want %v", order, want)
	}
	for _, a := range agents {
		if v := s.ssh(a, "dpkg-query -W -f '${Version}' puppet-agent"); !strings.HasSuffix(strings.TrimSpace(v), "+troupe1") {
			t.Errorf("%s: puppet-agent %s after upgrade-agents", a, v)
		}
	}
	again := s.troupeRun(ctx, "run", "upgrade-agents", "--param", "batch=50%")
	if again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("second upgrade-agents: exit %d, changed %v", again.code, again.with("changed"))
	}
}

// rollbackScenario: after the upgrade, compile2 is rolled back to the
// versions the upgrade recorded on it, through the pool, under agent load:
// 0 failed runs across its time out of the pool, every recorded package at
// its recorded version, the record used once (a second run changes
// nothing). It hands the site on as it found it: compile2 is upgraded
// again (upgrade --limit).
func rollbackScenario(ctx context.Context, t *testing.T, s *site) {
	const victim = "compile2"
	var record map[string]string
	if err := json.Unmarshal([]byte(s.ssh(victim, "cat /var/lib/troupe/rollback.json")), &record); err != nil || len(record) == 0 {
		t.Fatalf("%s: the upgrade's record: %v %v", victim, record, err)
	}
	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)
	r := s.troupeRun(ctx, "run", "rollback-compiler", "--limit", victim+".lab.test")
	lbReport(t, lb.stop())
	agentReport(t, agents.stop(), riskWindow{victim + " rolled back", hostWindow(r, "rollback/", victim+".lab.test")})
	if r.code != 0 {
		t.Fatalf("rollback-compiler: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("rollback-compiler: %s, %d changed", r.wall.Round(time.Second), len(r.with("changed")))
	seconds(t, "rollback-compiler", r.wall)
	// the record names parts of the site; the lab's flavor says which package each is
	flavor, err := puppet.Lookup("debian")
	if err != nil {
		t.Fatal(err)
	}
	if len(record) != 3 {
		t.Errorf("%s: the record %v, want the server, the agent and the termini", victim, record)
	}
	for part, want := range record {
		pkg, ok := flavor.Packages.Part(part)
		if !ok {
			t.Errorf("%s: the record names %q, not a part of the site", victim, part)
			continue
		}
		if got := strings.TrimSpace(s.ssh(victim, "dpkg-query -W -f '${Version}' "+pkg)); got != want {
			t.Errorf("%s: %s %s after the rollback, want %s", victim, pkg, got, want)
		}
	}
	if got := s.ssh(victim, "test -e /var/lib/troupe/rollback.json.used && ! test -e /var/lib/troupe/rollback.json && echo used"); !strings.Contains(got, "used") {
		t.Errorf("%s: the record is not marked used", victim)
	}
	if st := s.haproxyStatus(); !strings.HasPrefix(st[victim], "UP") || !strings.HasPrefix(st["compile1"], "UP") {
		t.Errorf("after the rollback: haproxy %v", st)
	}
	again := s.troupeRun(ctx, "run", "rollback-compiler", "--limit", victim+".lab.test")
	if again.code != 0 || len(again.with("changed")) != 0 || len(drained(again, "")) != 0 {
		t.Errorf("second rollback-compiler: exit %d, changed %v, drained %v", again.code, again.with("changed"), drained(again, ""))
	}

	// Hand on: compile2 upgraded again.
	up := s.troupeRun(ctx, "run", "upgrade", "--limit", victim+".lab.test")
	if up.code != 0 {
		t.Fatalf("upgrade --limit %s after the rollback: exit %d\n%s", victim, up.code, strings.Join(up.with("failed"), "\n"))
	}
	for _, l := range strings.Split(strings.TrimSpace(s.ssh(victim, "dpkg-query -W "+s.serverPackages()[victim])), "\n") {
		if f := strings.Fields(l); len(f) != 2 || !strings.HasSuffix(f[1], "+troupe1") {
			t.Errorf("%s: %q after upgrading it again", victim, l)
		}
	}
}
