package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// puppetdbFailoverScenario: one of two PuppetDBs dies and the site goes on.
//
// Both PuppetDBs share the database on db (group postgres); the servers
// reach them through server_urls, compile1 and the CA the first PuppetDB
// first, compile2 the second first. The agents' catalogs collect exported
// resources, so a compile reads PuppetDB, and every run writes facts, a
// catalog and a report. The first PuppetDB dies twice under two agent
// loops: its JVM killed (kill -9; systemd starts a new one), then its host
// halted (a power loss; power comes back at the end). For each:
//
//   - a probe run compiled by compile1 (whose list starts at the dead one)
//     right after the fault: the seconds until a compile that collects
//     (reads) and stores its report (writes) works again, by the other
//     PuppetDB; its report is read back from the other PuppetDB;
//   - 0 failed agent runs that started after the fault (runs in flight
//     counted apart), and runs crossed the outage;
//   - troupe status flags the dead PuppetDB, and not the other.
//
// Afterwards both PuppetDBs run and troupe status exits 0.
func puppetdbFailoverScenario(ctx context.Context, t *testing.T, s *site) {
	if s.l.Spec.PuppetDBs < 2 {
		t.Fatal("this suite's lab has one PuppetDB")
	}
	const victim, other = "puppetdb", "puppetdb2"
	d := s.l.Spec.Domain
	// The lists the servers were given: compile1 starts at the victim.
	for host, first := range map[string]string{"compile1": victim, "compile2": other, "ca": victim} {
		urls := s.ssh(host, "sed -n 's/^server_urls *= *//p' $(puppet config print confdir)/puppetdb.conf")
		if !strings.HasPrefix(strings.TrimSpace(urls), "https://"+first+"."+d+":8081,") {
			t.Fatalf("%s's server_urls = %q, want every PuppetDB, %s first", host, urls, first)
		}
	}
	// The probe: an agent run of the other PuppetDB's host compiled by
	// compile1 (its catalog collects: it reads PuppetDB), and its report,
	// read back from the other PuppetDB. First on the healthy site.
	probe := func(after time.Time) (ok bool, out string) {
		out, rc := s.sshRC(other, "puppet agent --test --detailed-exitcodes --color=false --server compile1."+d)
		if rc != 0 && rc != 2 || errorLine.MatchString(out) {
			return false, out
		}
		if by := compiledRe.FindStringSubmatch(out); by == nil || by[1] != "compile1."+d {
			return false, "compiled by " + strings.Join(by, " ") + "\n" + out
		}
		return s.reportStored(other, other+"."+d, "compile1."+d, after, 30*time.Second), out
	}
	if ok, out := probe(time.Now()); !ok {
		t.Fatalf("the probe on the healthy site (the positive control) failed:\n%s", out)
	}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	for deadline := time.Now().Add(3 * time.Minute); len(agents.snapshot()) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}

	// 1. The victim's JVM killed.
	pid := strings.TrimSpace(s.ssh(victim, "systemctl show -p MainPID --value puppetdb"))
	if pid == "" || pid == "0" {
		t.Fatalf("no PuppetDB JVM on %s", victim)
	}
	killed := time.Now()
	s.ssh(victim, "kill -9 "+pid)
	ok, out := probe(killed)
	failover := time.Since(killed)
	if !ok {
		t.Errorf("the probe after the kill failed:\n%s", out)
	}
	// It proves the failover only if the victim was still down at its end.
	if st := s.pdbState(victim); st == "running" {
		t.Errorf("%s's PuppetDB was running again before the probe ended (%s after the kill): the probe proves nothing", victim, failover.Round(100*time.Millisecond))
	}
	t.Logf("PUPPETDB: JVM killed; a compile on compile1 read and wrote through %s %s later", other, failover.Round(100*time.Millisecond))
	seconds(t, "puppetdb-failover: JVM killed to a compile reading and writing through the other", failover)
	s.pdbDown(ctx, victim, other)
	back := s.awaitPDB(victim, 5*time.Minute)
	if back.IsZero() {
		t.Fatalf("%s's PuppetDB not running within 5 minutes of the kill (systemd's Restart=on-abnormal)", victim)
	}
	seconds(t, "puppetdb-failover: JVM killed to running again (systemd)", back.Sub(killed))
	killWindow := riskWindow{"PuppetDB's JVM killed until running again", [2]time.Time{killed, back}}

	// 2. The victim's host halted.
	for deadline := time.Now().Add(2 * time.Minute); len(runsAfter(agents.snapshot(), back)) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	if err := s.l.Halt(victim); err != nil {
		t.Fatal(err)
	}
	halted := time.Now()
	ok, out = probe(halted)
	failover = time.Since(halted)
	if !ok {
		t.Errorf("the probe after the halt failed:\n%s", out)
	}
	t.Logf("PUPPETDB: host halted; a compile on compile1 read and wrote through %s %s later", other, failover.Round(100*time.Millisecond))
	seconds(t, "puppetdb-failover: host halted to a compile reading and writing through the other", failover)
	s.pdbDown(ctx, victim, other)
	for deadline := time.Now().Add(2 * time.Minute); len(runsAfter(agents.snapshot(), halted)) < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	runs := agents.stop()
	haltWindow := riskWindow{"PuppetDB's host halted", [2]time.Time{halted, time.Now()}}
	if err := s.l.PowerOn(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if s.awaitPDB(victim, 5*time.Minute).IsZero() {
		t.Fatalf("%s's PuppetDB not running within 5 minutes of power coming back", victim)
	}

	for _, f := range []struct {
		at   time.Time
		what string
	}{{killed, "the kill"}, {halted, "the halt"}} {
		inFlight, inFlightFailed, after, afterFailed := splitAtFault(t, runs, f.at, f.what)
		t.Logf("PUPPETDB: %d runs in flight at %s, %d of them failed; %d runs started after it, %d failed", inFlight, f.what, inFlightFailed, after, afterFailed)
		record(t, "puppetdb-failover: runs started after "+f.what+" that failed", float64(afterFailed), "count")
		if after < 2 {
			t.Errorf("only %d agent runs started after %s", after, f.what)
		}
	}
	mustCross(t, runs, killWindow, haltWindow)
	if st, code := s.status(ctx); code != 0 {
		t.Errorf("troupe status with both PuppetDBs back: exit %d\n%s", code, st.problems())
	}
}

// reportStored waits up to within for a report of certname produced by
// producer and received after after, asking host's PuppetDB.
func (s *site) reportStored(host, certname, producer string, after time.Time, within time.Duration) bool {
	s.t.Helper()
	q := `["and",["=","certname","` + certname + `"],["=","producer","` + producer + `"],[">","receive_time","` +
		after.UTC().Format("2006-01-02T15:04:05.000Z") + `"]]`
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, rc := s.sshRC(host, "curl -sfG http://127.0.0.1:8080/pdb/query/v4/reports --data-urlencode 'query="+q+"' --data-urlencode limit=1")
		var reports []struct {
			ReceiveTime string `json:"receive_time"`
		}
		if rc == 0 && json.Unmarshal([]byte(out), &reports) == nil && len(reports) > 0 {
			return true
		}
	}
	return false
}

// pdbState is what host's PuppetDB says of itself ("running", …), or ""
// when it does not answer.
func (s *site) pdbState(host string) string {
	out, _ := s.sshRC(host, "curl -sf --max-time 5 http://127.0.0.1:8080/status/v1/services/puppetdb-status")
	var st struct {
		State string `json:"state"`
	}
	json.Unmarshal([]byte(out), &st)
	return st.State
}

// awaitPDB waits until host's PuppetDB is running: when, or zero.
func (s *site) awaitPDB(host string, within time.Duration) time.Time {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(time.Second) {
		if s.pdbState(host) == "running" {
			return time.Now()
		}
	}
	return time.Time{}
}

// pdbDown: troupe status exits 1 and flags the dead PuppetDB, not the
// other one.
func (s *site) pdbDown(ctx context.Context, dead, alive string) {
	t := s.t
	st, code := s.status(ctx)
	if code != 1 {
		t.Errorf("status with %s's PuppetDB dead: exit %d, want 1\n%s", dead, code, st.problems())
	}
	d := s.l.Spec.Domain
	if h := st.host(dead + "." + d); h == nil || h.Level != "bad" {
		t.Errorf("status does not flag %s as bad with its PuppetDB dead: %+v\n%s", dead, h, st.problems())
	}
	if h := st.host(alive + "." + d); h == nil || h.Level == "bad" {
		t.Errorf("status: %s %+v while only %s is dead\n%s", alive, h, dead, st.problems())
	}
}

// puppetdbCapacityScenario: a PuppetDB taken out and put back, under two
// agent loops whose catalogs read PuppetDB.
//
//   - bootstrap with group postgres left out (the database would move
//     beside the first PuppetDB): refused on the PuppetDBs before any
//     package moves, nothing changed.
//   - remove-puppetdb while puppetdb2 is still in group puppetdb: refused,
//     nothing changed.
//   - puppetdb2 moved to group retired, remove-puppetdb: every server's
//     server_urls lists only puppetdb (the compilers reloaded one at a time
//     through the pool); PostgreSQL refuses puppetdb2's certificate (no
//     mapping) beside puppetdb's, accepted; its PuppetDB stopped and
//     disabled, its certificate gone from the CA. A second run changes
//     nothing.
//   - puppetdb2 back in group puppetdb as a new host (its Puppet and
//     PuppetDB TLS files cleared: its certificate was revoked), add-puppetdb:
//     PuppetDB running there, reaching the database, every server's list
//     holds it again. A second run changes nothing.
//   - 0 failed agent runs, runs crossing each compiler's cycle.
func puppetdbCapacityScenario(ctx context.Context, t *testing.T, s *site) {
	if s.l.Spec.PuppetDBs < 2 {
		t.Fatal("this suite's lab has one PuppetDB")
	}
	const old = "puppetdb2"
	d := s.l.Spec.Domain
	fq := old + "." + d
	urls := func(host string) string {
		return strings.TrimSpace(s.ssh(host, "sed -n 's/^server_urls *= *//p' $(puppet config print confdir)/puppetdb.conf"))
	}
	// psql as a PuppetDB logs in: with host's Puppet certificate, verifying
	// the database host's; the exit code and the server's answer
	login := func(host string) (string, int) {
		return s.sshRC(host, "psql 'host=db."+d+" dbname=puppetdb user=puppetdb sslmode=verify-full sslrootcert=/etc/puppetdb/ssl/ca.pem "+
			"sslcert=/etc/puppetdb/ssl/public.pem sslkey=/etc/puppetdb/ssl/private.pem' -XAtc 'select 1' 2>&1")
	}
	if out, rc := login(old); rc != 0 {
		t.Fatalf("before: %s cannot log in to the database with its certificate (the control): %s", old, out)
	}

	// The database stays where it is: with group postgres left out of the
	// inventory, bootstrap would move the PuppetDBs to a database beside
	// the first, empty; it is refused before any package moves (CI once
	// saw PostgreSQL installed there first), nothing changed.
	withDB := s.inv
	s.inv = regroupInventory(t, s.dir, s.inv, "db", "postgres", "retired")
	r := s.troupeRun(ctx, "run", "bootstrap")
	s.inv = withDB
	if failed := strings.Join(r.with("failed"), "\n"); r.code != 1 || !strings.Contains(failed, "moving PuppetDB's data is not built") || len(r.with("changed")) != 0 {
		t.Errorf("bootstrap without group postgres: exit %d, changed %v, want the PuppetDBs' refusal:\n%s", r.code, r.with("changed"), failed)
	}

	r = s.troupeRun(ctx, "run", "remove-puppetdb", "-p", "certname="+fq)
	if failed := strings.Join(r.with("failed"), "\n"); r.code != 1 || !strings.Contains(failed, "still in group puppetdb") || len(r.with("changed")) != 0 {
		t.Fatalf("remove-puppetdb with %s still in group puppetdb: exit %d, changed %v, want a refusal:\n%s", old, r.code, r.with("changed"), failed)
	}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	for deadline := time.Now().Add(3 * time.Minute); len(agents.snapshot()) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	withOld := s.inv
	s.inv = regroupInventory(t, s.dir, s.inv, old, "puppetdb", "retired")
	removed := s.troupeRun(ctx, "run", "remove-puppetdb", "-p", "certname="+fq)
	if removed.code != 0 {
		t.Fatalf("remove-puppetdb: exit %d\n%s\n%s", removed.code, strings.Join(removed.with("failed"), "\n"), removed.stderr)
	}
	seconds(t, "remove-puppetdb", removed.wall)
	for _, h := range append(s.compilers(), "ca") {
		if got := urls(h); got != "https://puppetdb."+d+":8081" {
			t.Errorf("%s's server_urls after remove-puppetdb: %q, want puppetdb alone", h, got)
		}
	}
	if got := drained(removed, "termini/"); !slices.Equal(got, []string{"compile1." + d, "compile2." + d}) {
		t.Errorf("remove-puppetdb drained %v, want each compiler in turn", got)
	}
	if out, rc := login(old); rc == 0 || !strings.Contains(out, "certificate authentication failed") {
		t.Errorf("%s's certificate after remove-puppetdb: rc %d, want PostgreSQL's refusal: %s", old, rc, out)
	}
	if out, rc := login("puppetdb"); rc != 0 {
		t.Errorf("puppetdb's certificate refused beside it (the control): %s", out)
	}
	if st := strings.Fields(s.ssh(old, "systemctl is-active puppetdb || true; systemctl is-enabled puppetdb || true")); len(st) != 2 || st[0] != "inactive" || st[1] != "disabled" {
		t.Errorf("%s's PuppetDB after remove-puppetdb: %v, want inactive and disabled", old, st)
	}
	if _, rc := s.sshRC("ca", "puppetserver ca list --all 2>/dev/null | grep -qw "+fq); rc == 0 {
		t.Errorf("the CA still lists %s's certificate", fq)
	}
	if again := s.troupeRun(ctx, "run", "remove-puppetdb", "-p", "certname="+fq); again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("a second remove-puppetdb: exit %d, changed %v", again.code, again.with("changed"))
	}

	// Back as a new host: its revoked certificate and PuppetDB's copy gone.
	s.ssh(old, "rm -rf \"$(puppet config print ssldir)\" /etc/puppetdb/ssl")
	s.inv = withOld
	added := s.troupeRun(ctx, "run", "add-puppetdb")
	if added.code != 0 {
		t.Fatalf("add-puppetdb: exit %d\n%s\n%s", added.code, strings.Join(added.with("failed"), "\n"), added.stderr)
	}
	seconds(t, "add-puppetdb", added.wall)
	if st := s.pdbState(old); st != "running" {
		t.Errorf("%s's PuppetDB after add-puppetdb: %q", old, st)
	}
	if out, rc := login(old); rc != 0 {
		t.Errorf("%s's new certificate refused by the database: %s", old, out)
	}
	for h, first := range map[string]string{"compile1": "puppetdb", "compile2": old, "ca": "puppetdb"} {
		if got := urls(h); !strings.HasPrefix(got, "https://"+first+"."+d+":8081,") || strings.Count(got, "https://") != 2 {
			t.Errorf("%s's server_urls after add-puppetdb: %q, want both, %s first", h, got, first)
		}
	}
	if again := s.troupeRun(ctx, "run", "add-puppetdb"); again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("a second add-puppetdb: exit %d, changed %v", again.code, again.with("changed"))
	}
	var windows []riskWindow
	for _, x := range []struct {
		r    run
		what string
	}{{removed, "remove-puppetdb"}, {added, "add-puppetdb"}} {
		for _, c := range s.compilers() {
			windows = append(windows, riskWindow{c + " reloaded by " + x.what, hostWindow(x.r, "termini/compilers/", c+"."+d)})
		}
	}
	agentReport(t, agents.stop(), windows...)
}
