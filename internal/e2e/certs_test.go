package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// regenCertScenario: the load balancer gains a name (lb_aliases in the
// inventory) and troupe run regen-cert reissues both compilers'
// certificates with it, one at a time, under agent load: 0 failed runs, the
// new name read over TLS from each compiler, an agent that dials the alias
// succeeds (it failed before), the old certificates revoked, and a second
// run (and a bootstrap) change nothing.
func regenCertScenario(ctx context.Context, t *testing.T, s *site) {
	const alias = "puppet-alias.lab.test"
	compilers := s.compilers()

	// The alias resolves to the load balancer on agent1.
	var lbAddr string
	for _, h := range s.l.Hosts {
		if h.Short == "lb" {
			lbAddr = h.Address
		}
	}
	s.ssh("agent1", "grep -q ' "+alias+"$' /etc/hosts || echo '"+lbAddr+" "+alias+"' >> /etc/hosts")
	dialAlias := func() (string, int) {
		out, err := s.l.SSHCommand("agent1", "puppet agent --test --detailed-exitcodes --color=false --server "+alias).CombinedOutput()
		return string(out), exitCode(err)
	}
	if out, rc := dialAlias(); rc == 0 || rc == 2 {
		t.Fatalf("agent1 dialling %s before regen-cert: rc %d (want a certificate mismatch)\n%s", alias, rc, out)
	} else if !strings.Contains(out, alias) {
		t.Logf("dialling %s before: rc %d: %s", alias, rc, oneLine(out))
	}

	servedSAN := func(c string) string {
		return s.ssh("lb", "openssl s_client -connect "+c+":8140 -servername "+c+" </dev/null 2>/dev/null | openssl x509 -noout -serial -ext subjectAltName")
	}
	before := map[string]string{}
	for _, c := range compilers {
		before[c] = servedSAN(c)
	}

	// The inventory names the alias.
	b, err := os.ReadFile(s.inv)
	if err != nil {
		t.Fatal(err)
	}
	inv := strings.Replace(string(b), "\nvars:\n", "\nvars:\n  lb_aliases: ["+alias+"]\n", 1)
	s.inv = filepath.Join(s.dir, "inventory-alias.yaml")
	if err := os.WriteFile(s.inv, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}

	noop := s.troupeRun(ctx, "run", "regen-cert", "--noop")
	if noop.code != 0 || len(noop.with("changed")) == 0 {
		t.Fatalf("regen-cert --noop: exit %d, changed %v\n%s", noop.code, noop.with("changed"), noop.stderr)
	}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)
	r := s.troupeRun(ctx, "run", "regen-cert")
	lbReport(t, lb.stop())
	var risks []riskWindow // each compiler out of the pool, reissued and reloaded
	for _, c := range compilers {
		risks = append(risks, riskWindow{c + " reissued", hostWindow(r, "compilers/", c+".lab.test")})
	}
	agentReport(t, agents.stop(), risks...)
	if r.code != 0 {
		t.Fatalf("regen-cert: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("regen-cert: %s, %d changed; PER COMPILER: %s", r.wall.Round(time.Second), len(r.with("changed")), perHost("compilers/", r))
	seconds(t, "regen-cert", r.wall)
	var fqdns []string
	for _, c := range compilers {
		fqdns = append(fqdns, c+".lab.test")
	}
	if got := drained(r, "compilers/"); strings.Join(got, ",") != strings.Join(fqdns, ",") {
		t.Errorf("compilers drained in turn: %v, want %v", got, fqdns)
	}

	// Read over TLS from each compiler: the alias, and a new serial.
	for _, c := range compilers {
		now := servedSAN(c)
		if !strings.Contains(now, "DNS:"+alias) || !strings.Contains(now, "DNS:puppet.lab.test") {
			t.Errorf("%s serves a certificate without %s and puppet.lab.test:\n%s", c, alias, now)
		}
		if serialOf(now) == "" || serialOf(now) == serialOf(before[c]) {
			t.Errorf("%s serves serial %q, before %q: not reissued", c, serialOf(now), serialOf(before[c]))
		}
		// The old certificate is revoked: its serial is in the CA's CRL.
		crl := s.ssh("ca", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem")
		if old := serialOf(before[c]); old == "" || !strings.Contains(strings.ToUpper(crl), "SERIAL NUMBER: "+old) {
			t.Errorf("%s's old serial %s is not in the CA's CRL", c, serialOf(before[c]))
		}
		if mode := strings.TrimSpace(s.ssh(c, "stat -c %a /var/lib/troupe/backups/ssl-"+c+".lab.test-*/ | head -1")); mode != "700" {
			t.Errorf("%s: backup of the old certificate and key: mode %q, want 700", c, mode)
		}
	}
	if out, rc := dialAlias(); rc != 0 && rc != 2 {
		t.Errorf("agent1 dialling %s after regen-cert: rc %d\n%s", alias, rc, out)
	}

	second := s.troupeRun(ctx, "run", "regen-cert")
	if second.code != 0 || len(second.with("changed")) != 0 || len(drained(second, "")) != 0 {
		t.Errorf("second regen-cert: exit %d, changed %v, drained %v", second.code, second.with("changed"), drained(second, ""))
	}
	t.Logf("second regen-cert: %s, 0 changed", second.wall.Round(time.Second))
	// The bootstrap agrees with what regen-cert left (puppet.conf's names).
	if _, changed := s.troupe(ctx, "run", "bootstrap"); len(changed) != 0 {
		t.Errorf("bootstrap after regen-cert changed %v", changed)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		return -1
	}
	return 0
}

// serialOf is the serial=... of openssl x509 -serial output.
func serialOf(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "serial="); ok {
			return strings.ToUpper(v)
		}
	}
	return ""
}

// certExpiryScenario: the expiry report on the CA lists every certificate
// the site uses with the days it has left, read from the CA's files; with a
// horizon longer than the agents' certificates live (five years) and
// fail=true it fails, as a cron job would.
func certExpiryScenario(ctx context.Context, t *testing.T, s *site) {
	r := s.troupeRun(ctx, "run", "cert-expiry")
	if r.code != 0 {
		t.Fatalf("cert-expiry: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	report := output(r, "expiry")
	for _, name := range append(s.compilers(), "ca", "agent1", "agent2", "puppetdb") {
		if !strings.Contains(report, " cert  "+name+".lab.test ") {
			t.Errorf("no certificate line for %s in the report:\n%s", name, report)
		}
	}
	if !strings.Contains(report, "  ca    ") || !strings.Contains(report, "  crl   ") {
		t.Errorf("the report lacks the CA certificate or its CRL:\n%s", report)
	}
	t.Logf("cert-expiry: %s; %s", r.wall.Round(100*time.Millisecond), messages(r, "expiry"))

	strict := s.troupeRun(ctx, "run", "cert-expiry", "-p", "horizon=2000d", "-p", "fail=true")
	if strict.code != 1 || !strings.Contains(messages(strict, "expiry")+strings.Join(strict.with("failed"), ""), "inside 2000d") {
		t.Errorf("cert-expiry horizon=2000d fail=true: exit %d (want 1), %s %v", strict.code, messages(strict, "expiry"), strict.with("failed"))
	}
}

// revokeScenario: agent2's certificate is revoked while agent1 runs in a
// loop. Every compiler (directly) and the load balancer refuse agent2's old
// certificate within a bound, measured from the end of the run; agent1
// never fails. Then reissue=true gives agent2 a new key and certificate: it
// runs again, and its old certificate stays refused. A second run changes
// nothing.
func revokeScenario(ctx context.Context, t *testing.T, s *site) {
	const victim = "agent2.lab.test"
	// The refusals of the certificate the CA revokes are refusals by TLS
	// (tlsAnswer.refusedTLS), each beside agent1's certificate served by
	// the same server in the same sweep.
	key := s.ssh("agent2", "cat $(puppet config print hostprivkey)")
	cert := s.ssh("agent2", "cat $(puppet config print hostcert)")
	s.put("agent1", "/root/stolen/cert.pem", cert)
	s.put("agent1", "/root/stolen/key.pem", key)
	stolen := clientCert{"/root/stolen/cert.pem", "/root/stolen/key.pem"}
	control := clientCert{"$(puppet config print hostcert)", "$(puppet config print hostprivkey)"}
	endpoints := append(s.compilers(), "puppet") // puppet.lab.test: the load balancer
	path := "/puppet/v3/environments"            // any client certificate of the CA may read it
	for h, p := range s.tlsSweep("agent1", endpoints, path, stolen, control) {
		if !p.probe.accepted() || !p.control.accepted() {
			t.Fatalf("before the revocation, %s answers agent2's certificate with %s and agent1's with %s; want both served", h, p.probe, p.control)
		}
	}
	// A bound the revocation must meet on every server: puppetserver reads
	// the CRL file troupe puts on each compiler when it changes.
	const refusalBound = 30 * time.Second

	oldSerial := strings.TrimPrefix(strings.TrimSpace(s.ssh("agent1", "openssl x509 -noout -serial -in /root/stolen/cert.pem")), "serial=")

	// The CA host's and the PuppetDB host's certificates are refused before
	// anything changes: the CA's CRL keeps its entries.
	crlBefore := s.ssh("ca", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem | grep -c 'Serial Number' || true")
	for _, name := range []string{"ca.lab.test", "puppetdb.lab.test"} {
		no := s.troupeRun(ctx, "run", "revoke", "-p", "certname="+name)
		if failed := strings.Join(no.with("failed"), ""); no.code != 1 || len(no.with("changed")) != 0 || !strings.Contains(failed, "troupe does not revoke") {
			t.Errorf("revoke certname=%s: exit %d, changed %v, failed %q (want exit 1, nothing changed, the refusal)", name, no.code, no.with("changed"), failed)
		}
	}
	if now := s.ssh("ca", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem | grep -c 'Serial Number' || true"); now != crlBefore {
		t.Errorf("the CA's CRL changed after refused revokes: %s entries, was %s", strings.TrimSpace(now), strings.TrimSpace(crlBefore))
	}

	agents := startAgentLoop(t, s, "agent1")
	r := s.troupeRun(ctx, "run", "revoke", "-p", "certname="+victim)
	end := time.Now()
	if r.code != 0 {
		t.Fatalf("revoke: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("revoke: %s, %d changed", r.wall.Round(100*time.Millisecond), len(r.with("changed")))
	if msg := output(r, "ca/find"); !strings.Contains(msg, "REVOKE serial 0x"+strings.TrimLeft(oldSerial, "0")) {
		t.Errorf("revoke found %q, want serial %s", msg, oldSerial)
	}
	var revokedAt time.Time // when the CA's clean ended
	for _, e := range r.events {
		if e.Kind == "host_result" && e.Step == "ca/clean" && e.Status == "changed" {
			revokedAt = e.Time
		}
	}
	if revokedAt.IsZero() {
		t.Fatalf("no ca/clean that changed in the revoke run")
	}
	refused := s.refusedBy("agent1", endpoints, path, stolen, control, revokedAt.Add(refusalBound))
	var last time.Duration
	for _, h := range endpoints {
		if at, ok := refused[h]; ok {
			last = max(last, at.Sub(revokedAt))
			t.Logf("REVOKE: %s refuses the revoked certificate by TLS %s after the CA revoked it (%s after the run ended)", h,
				at.Sub(revokedAt).Round(100*time.Millisecond), at.Sub(end).Round(100*time.Millisecond))
		}
	}
	if len(refused) == len(endpoints) {
		t.Logf("REVOKE: from the CA's revocation to a TLS refusal on the last of %v: %s (bound %s)", endpoints, last.Round(100*time.Millisecond), refusalBound)
		seconds(t, "revocation to a TLS refusal on every server", last)
	}
	// troupe status flags the revoked certificate (exit 1), and agent1's
	// certificate, the control, is not flagged.
	if st, code := s.status(ctx); code != 1 {
		t.Errorf("status with agent2's certificate revoked: exit %d, want 1\n%s", code, st.problems())
	} else {
		for name, want := range map[string]bool{victim: true, "agent1.lab.test": false} {
			if h := st.host(name); h == nil || h.Cert == nil || h.Cert.Revoked != want {
				t.Errorf("status: %s's certificate revoked %v, want %v (%+v)", name, h != nil && h.Cert != nil && h.Cert.Revoked, want, h)
			}
		}
	}
	if out, rc := s.agentRun("agent2"); rc != 1 && !strings.Contains(out, "Error") {
		t.Errorf("agent2's run through the load balancer with its revoked certificate: rc %d\n%s", rc, out)
	}

	re := s.troupeRun(ctx, "run", "revoke", "-p", "certname="+victim, "-p", "reissue=true")
	// agent1 keeps running while the servers take the new CRL
	agentReport(t, agents.stop(), riskWindow{"revoke", span(r)}, riskWindow{"revoke reissue=true", span(re)})
	if re.code != 0 {
		t.Fatalf("revoke reissue=true: exit %d\n%s\n%s", re.code, strings.Join(re.with("failed"), "\n"), re.stderr)
	}
	t.Logf("revoke reissue=true: %s, %d changed", re.wall.Round(100*time.Millisecond), len(re.with("changed")))
	if out, rc := s.agentRun("agent2"); rc != 0 && rc != 2 {
		t.Errorf("agent2 with its new certificate: rc %d\n%s", rc, out)
	}
	for h, p := range s.tlsSweep("agent1", endpoints, path, stolen, control) {
		if !p.refused() {
			t.Errorf("after the reissue, %s answers agent2's old certificate with %s (agent1's: %s); want a TLS refusal beside a served control", h, p.probe, p.control)
		}
	}
	// Run again for the serial it revoked: the new certificate is left alone.
	again := s.troupeRun(ctx, "run", "revoke", "-p", "certname="+victim, "-p", "serial="+oldSerial, "-p", "reissue=true")
	if again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("second revoke serial=%s reissue=true: exit %d, changed %v", oldSerial, again.code, again.with("changed"))
	}
	if msg := output(again, "ca/find"); !strings.Contains(msg, "on the CRL already") {
		t.Errorf("second revoke: %q", msg)
	}
}

// output is the live output lines of a step, joined.
func output(r run, stepID string) string {
	var lines []string
	for _, e := range r.events {
		if e.Step == stepID && e.Kind == "host_line" {
			lines = append(lines, e.Text)
		}
	}
	return strings.Join(lines, "\n")
}

// caRenewScenario: the CA's certificates are signed again with their own
// keys while two agents run: the bundle's not-after moves, the CA keys stay
// the same, every host ends up with the CA's new bundle (compilers one at a
// time through the pool), every agent runs afterwards with the certificate
// it had, and a second run changes nothing.
func caRenewScenario(ctx context.Context, t *testing.T, s *site) {
	caState := func() (dates, keys string) {
		dates = s.ssh("ca", "awk '/BEGIN CERT/{n++} {print > (\"/tmp/troupe-e2e-ca\" n \".pem\")}' "+caDir+"/ca_crt.pem; for f in /tmp/troupe-e2e-ca*.pem; do openssl x509 -noout -subject -enddate -in $f; done; rm -f /tmp/troupe-e2e-ca*.pem")
		keys = s.ssh("ca", "for k in ca_key.pem root_key.pem; do openssl pkey -pubout -in "+caDir+"/$k | sha256sum; done")
		return dates, keys
	}
	agentSerial := func(a string) string {
		return s.ssh(a, "openssl x509 -noout -serial -in $(puppet config print hostcert)")
	}
	datesBefore, keysBefore := caState()
	serials := map[string]string{"agent1": agentSerial("agent1"), "agent2": agentSerial("agent2")}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)
	// The lab's CA ends in 15 years (5474 days): a window of 5480 days makes
	// it due, 5600 days of validity puts the renewed one beyond it.
	r := s.troupeRun(ctx, "run", "ca-renew", "-p", "within=5480d", "-p", "days=5600")
	lbReport(t, lb.stop())
	risks := []riskWindow{{"CA renewed and reloaded", hostWindow(r, "ca/", "ca.lab.test")}}
	for _, c := range s.compilers() {
		risks = append(risks, riskWindow{c + " on the new bundle", hostWindow(r, "compilers/", c+".lab.test")})
	}
	agentReport(t, agents.stop(), risks...)
	if r.code != 0 {
		t.Fatalf("ca-renew: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("ca-renew: %s, %d changed; %s; PER COMPILER: %s", r.wall.Round(time.Second), len(r.with("changed")),
		messages(r, "ca/renew/sign"), perHost("compilers/", r))
	seconds(t, "ca-renew", r.wall)

	datesAfter, keysAfter := caState()
	t.Logf("CA before:\n%s\nCA after:\n%s", datesBefore, datesAfter)
	// Every CA certificate of the bundle ends later than it did.
	was, now := notAfters(t, datesBefore), notAfters(t, datesAfter)
	if len(now) == 0 || len(now) != len(was) {
		t.Errorf("the CA bundle had %d certificates, now %d", len(was), len(now))
	}
	for subj, end := range now {
		if !end.After(was[subj]) {
			t.Errorf("%s: not-after %s, was %s: not later", subj, end.Format(time.DateOnly), was[subj].Format(time.DateOnly))
		}
	}
	if keysAfter != keysBefore || strings.Count(keysAfter, "-") != 2 {
		t.Errorf("the CA keys changed:\n%s\nthen\n%s", keysBefore, keysAfter)
	}
	want := strings.Fields(s.ssh("ca", "sha256sum "+caDir+"/ca_crt.pem"))[0]
	holders := append(s.compilers(), "puppetdb", "agent1", "agent2")
	if s.l.Spec.CAStandby {
		holders = append(holders, "ca2")
	}
	for _, h := range holders {
		files := "$(puppet config print localcacert)"
		if h == "puppetdb" {
			files += " /etc/puppetdb/ssl/ca.pem"
		}
		for _, got := range strings.Split(strings.TrimSpace(s.ssh(h, "sha256sum "+files)), "\n") {
			if f := strings.Fields(got); len(f) != 2 || f[0] != want {
				t.Errorf("%s: %q is not the CA's renewed bundle", h, got)
			}
		}
	}
	for a, before := range serials {
		if out, rc := s.agentRun(a); rc != 0 && rc != 2 {
			t.Errorf("%s after the renewal: rc %d\n%s", a, rc, out)
		}
		if now := agentSerial(a); now != before {
			t.Errorf("%s has a new certificate (%s, was %s): it should not need one", a, now, before)
		}
	}
	again := s.troupeRun(ctx, "run", "ca-renew", "-p", "within=5480d", "-p", "days=5600")
	if again.code != 0 || len(again.with("changed")) != 0 || len(drained(again, "")) != 0 {
		t.Errorf("second ca-renew: exit %d, changed %v, drained %v", again.code, again.with("changed"), drained(again, ""))
	}
}

// notAfters reads `openssl x509 -subject -enddate` output: each subject's
// not-after.
func notAfters(t *testing.T, out string) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	var subj string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "subject="); ok {
			subj = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(l, "notAfter="); ok {
			at, err := time.Parse("Jan _2 15:04:05 2006 MST", strings.TrimSpace(v))
			if err != nil || subj == "" {
				t.Errorf("unreadable not-after %q of %q: %v", v, subj, err)
				continue
			}
			got[subj] = at
		}
	}
	return got
}

// caBackupRestoreScenario: a backup of the CA, downloaded (0600, checksum
// matches); the CA host's CA directory and ssldir wiped; ca-restore brings
// the same CA back (fingerprint, serial counter, CRL), the next certificate
// the CA signs takes the next serial, agents run through the load balancer
// meanwhile and after, and a second restore changes nothing.
func caBackupRestoreScenario(ctx context.Context, t *testing.T, s *site) {
	caState := func() string {
		return s.ssh("ca", "openssl x509 -noout -fingerprint -sha256 -in "+caDir+"/ca_crt.pem; echo serial $(cat "+caDir+"/serial);"+
			" openssl crl -noout -text -in "+caDir+"/ca_crl.pem | grep -c 'Serial Number' || true")
	}
	before := caState()
	local := filepath.Join(s.dir, "ca-backups")
	b := s.troupeRun(ctx, "run", "ca-backup", "-p", "download="+local)
	if b.code != 0 {
		t.Fatalf("ca-backup: exit %d\n%s\n%s", b.code, strings.Join(b.with("failed"), "\n"), b.stderr)
	}
	archive := strings.TrimSpace(output(b, "backup/archive"))
	if i := strings.LastIndex(archive, "\n"); i >= 0 {
		archive = archive[i+1:]
	}
	t.Logf("ca-backup: %s, archive %s", b.wall.Round(100*time.Millisecond), archive)
	got, err := os.ReadFile(filepath.Join(local, "ca.lab.test", filepath.Base(archive)))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(local, "ca.lab.test", filepath.Base(archive)))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("downloaded archive mode %o, want 600", st.Mode().Perm())
	}
	sum, _ := os.ReadFile(filepath.Join(local, "ca.lab.test", filepath.Base(archive)+".sha256"))
	if f := strings.Fields(string(sum)); len(f) != 2 || f[0] != fmt.Sprintf("%x", sha256.Sum256(got)) {
		t.Errorf("downloaded archive does not match its checksum %q", sum)
	}

	agents := startAgentLoop(t, s, "agent1", "agent2")
	// The loss: the CA's directory and the CA host's ssldir are gone.
	lost := time.Now()
	s.ssh("ca", "systemctl stop puppetserver; rm -rf "+caDir+" $(puppet config print ssldir)")
	r := s.troupeRun(ctx, "run", "ca-restore", "-p", "archive="+archive)
	if r.code != 0 {
		t.Fatalf("ca-restore: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("ca-restore: %s, %d changed; %s", r.wall.Round(time.Second), len(r.with("changed")), output(r, "check"))
	seconds(t, "ca-restore", r.wall)
	agentReport(t, agents.stop(), riskWindow{"CA lost and restored", [2]time.Time{lost, span(r)[1]}})
	if after := caState(); after != before {
		t.Errorf("CA before the loss:\n%s\nafter the restore:\n%s", before, after)
	}
	next := strings.TrimSpace(s.ssh("ca", "cat "+caDir+"/serial"))
	// The CA signs again, with the serial counter where it was.
	re := s.troupeRun(ctx, "run", "revoke", "-p", "certname=agent2.lab.test", "-p", "reissue=true")
	if re.code != 0 {
		t.Fatalf("revoke reissue=true after the restore: exit %d\n%s", re.code, strings.Join(re.with("failed"), "\n"))
	}
	serial := strings.TrimPrefix(strings.TrimSpace(s.ssh("agent2", "openssl x509 -noout -serial -in $(puppet config print hostcert)")), "serial=")
	if n1, e1 := strconv.ParseInt(next, 16, 64); e1 != nil || fmt.Sprintf("%X", n1) != strings.TrimLeft(serial, "0") {
		t.Errorf("agent2's new certificate has serial %s; the restored counter said %s", serial, next)
	}
	for _, a := range []string{"agent1", "agent2"} {
		if out, rc := s.agentRun(a); rc != 0 && rc != 2 {
			t.Errorf("%s after the restore: rc %d\n%s", a, rc, out)
		}
	}
	again := s.troupeRun(ctx, "run", "ca-restore", "-p", "archive="+archive)
	if again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("second ca-restore: exit %d, changed %v", again.code, again.with("changed"))
	}
}

// caCertScenario: the CA gains a name (ca_aliases in the inventory) and
// troupe run ca-cert reissues the CA host's own certificate offline while
// two agents run through the load balancer: 0 failed runs, the alias read
// over TLS from the CA, an agent that dials the CA by the alias verifies
// it (it failed before), the CA key unchanged, `puppetserver ca` still
// works, and a second run (and a bootstrap) change nothing.
func caCertScenario(ctx context.Context, t *testing.T, s *site) {
	const alias = "puppet-ca-alias.lab.test"
	var caAddr string
	for _, h := range s.l.Hosts {
		if h.Short == "ca" {
			caAddr = h.Address
		}
	}
	s.ssh("agent1", "grep -q ' "+alias+"$' /etc/hosts || echo '"+caAddr+" "+alias+"' >> /etc/hosts")
	viaAlias := func() string {
		return strings.TrimSpace(s.ssh("agent1", "curl -s -o /dev/null -w '%{http_code}' --cacert $(puppet config print localcacert) https://"+alias+":8140/puppet-ca/v1/certificate/ca; echo \" $?\""))
	}
	if got := viaAlias(); got == "200 0" {
		t.Fatalf("agent1 verified the CA as %s before ca-cert: %q", alias, got)
	}
	served := func() string {
		return s.ssh("lb", "openssl s_client -connect ca.lab.test:8140 -servername ca.lab.test </dev/null 2>/dev/null | openssl x509 -noout -serial -ext subjectAltName")
	}
	before, keyBefore := served(), s.ssh("ca", "openssl pkey -pubout -in "+caDir+"/ca_key.pem | sha256sum")

	b, err := os.ReadFile(s.inv)
	if err != nil {
		t.Fatal(err)
	}
	s.inv = filepath.Join(s.dir, "inventory-ca-alias.yaml")
	if err := os.WriteFile(s.inv, []byte(strings.Replace(string(b), "\nvars:\n", "\nvars:\n  ca_aliases: ["+alias+"]\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	agents := startAgentLoop(t, s, "agent1", "agent2")
	r := s.troupeRun(ctx, "run", "ca-cert")
	agentReport(t, agents.stop(), riskWindow{"CA stopped", stepWindow(r, "reissue/stop", "reissue/healthy")})
	if r.code != 0 {
		t.Fatalf("ca-cert: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("ca-cert: %s, %d changed; CA stopped for %s", r.wall.Round(time.Second), len(r.with("changed")), stepSpan(r, "reissue/stop", "reissue/healthy").Round(time.Second))
	seconds(t, "ca-cert", r.wall)
	seconds(t, "ca-cert: CA stopped", stepSpan(r, "reissue/stop", "reissue/healthy"))

	after := served()
	if !strings.Contains(after, "DNS:"+alias) || serialOf(after) == serialOf(before) {
		t.Errorf("the CA serves (before):\n%s\n(after):\n%s", before, after)
	}
	if got := s.ssh("ca", "openssl pkey -pubout -in "+caDir+"/ca_key.pem | sha256sum"); got != keyBefore {
		t.Errorf("the CA key changed")
	}
	if got := viaAlias(); got != "200 0" {
		t.Errorf("agent1 dialling the CA as %s after ca-cert: %q", alias, got)
	}
	if out := s.ssh("ca", "puppetserver ca list --all; echo rc=$?"); !strings.Contains(out, "rc=0") || !strings.Contains(out, "agent1.lab.test") {
		t.Errorf("puppetserver ca list on the CA after ca-cert:\n%s", out)
	}
	if s.l.Spec.CAStandby {
		// The standby carries the CA's names, the new alias too.
		if sans := s.ssh("ca2", "openssl x509 -noout -ext subjectAltName -in $(puppet config print hostcert)"); !strings.Contains(sans, "DNS:"+alias) {
			t.Errorf("the standby CA's certificate lacks %s after ca-cert:\n%s", alias, sans)
		}
	}
	again := s.troupeRun(ctx, "run", "ca-cert")
	if again.code != 0 || len(again.with("changed")) != 0 {
		t.Errorf("second ca-cert: exit %d, changed %v", again.code, again.with("changed"))
	}
	if _, changed := s.troupe(ctx, "run", "bootstrap"); len(changed) != 0 {
		t.Errorf("bootstrap after ca-cert changed %v", changed)
	}
}

// stepSpan is the time from the start of step from to the end of step to.
func stepSpan(r run, from, to string) time.Duration {
	w := stepWindow(r, from, to)
	return w[1].Sub(w[0])
}

// stepWindow is from the start of step from to the end of step to (zero
// when either is missing).
func stepWindow(r run, from, to string) [2]time.Time {
	var a, b time.Time
	for _, e := range r.events {
		if e.Kind != "host_result" {
			continue
		}
		if e.Step == from {
			a = e.Time.Add(-e.Duration)
		}
		if e.Step == to {
			b = e.Time
		}
	}
	if a.IsZero() || b.IsZero() {
		return [2]time.Time{}
	}
	return [2]time.Time{a, b}
}

// caRebuildScenario (destructive: after it every certificate is new): a
// rebuild is refused without the current CA's fingerprint; with it, a new
// CA, every server and agent re-certified, every agent runs through the
// load balancer, a certificate of the old CA is refused by the compilers
// and the load balancer, and the same confirmation again changes nothing.
func caRebuildScenario(ctx context.Context, t *testing.T, s *site) {
	fp := func() string {
		return strings.TrimSpace(s.ssh("ca", "openssl x509 -noout -fingerprint -sha256 -in "+caDir+"/ca_crt.pem | cut -d= -f2"))
	}
	old := fp()
	s.ssh("agent1", "install -d -m 0700 /root/old-ca && cp $(puppet config print hostcert) /root/old-ca/cert.pem && cp $(puppet config print hostprivkey) /root/old-ca/key.pem && cp $(puppet config print localcacert) /root/old-ca/ca.pem")

	wrong := s.troupeRun(ctx, "run", "ca-rebuild", "-p", "confirm=00:11")
	if wrong.code != 1 || len(wrong.with("changed")) != 0 || !strings.Contains(strings.Join(wrong.with("failed"), ""), old) {
		t.Fatalf("ca-rebuild with a wrong confirmation: exit %d, changed %v, failed %v (want exit 1, nothing changed, the fingerprint named)",
			wrong.code, wrong.with("changed"), wrong.with("failed"))
	}
	r := s.troupeRun(ctx, "run", "ca-rebuild", "-p", "confirm="+old)
	if r.code != 0 {
		t.Fatalf("ca-rebuild: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	now := fp()
	t.Logf("ca-rebuild: %s, %d changed; CA %s → %s", r.wall.Round(time.Second), len(r.with("changed")), old, now)
	seconds(t, "ca-rebuild", r.wall)
	if now == "" || now == old {
		t.Fatalf("the CA's fingerprint did not change: %q", now)
	}
	if s.l.Spec.CAStandby {
		// The new CA is pushed to the standby like any change.
		lag := s.awaitReplica("the rebuilt CA", caReplicaBound, func() bool {
			return s.caReplicaSum("ca2", replicaDir) == s.caReplicaSum("ca", caDir)
		})
		t.Logf("the rebuilt CA on the standby %.2f s after the rebuild ended", lag.Seconds())
	}
	for _, a := range []string{"agent1", "agent2", "puppetdb"} {
		if out, rc := s.agentRun(a); rc != 0 && rc != 2 {
			t.Errorf("%s under the new CA: rc %d\n%s", a, rc, out)
		}
	}
	if st := s.haproxyStatus(); st["compile1"] != "UP" || st["compile2"] != "UP" {
		t.Errorf("haproxy after the rebuild: %v", st)
	}
	// The old CA's certificate, presented to the servers that now trust only
	// the new CA (verified against the new CA's bundle on agent1).
	// Each server refuses it by TLS while it serves agent1's new certificate.
	s.refusedBy("agent1", append(s.compilers(), "puppet"), "/puppet/v3/environments",
		clientCert{"/root/old-ca/cert.pem", "/root/old-ca/key.pem"},
		clientCert{"$(puppet config print hostcert)", "$(puppet config print hostprivkey)"}, time.Now().Add(30*time.Second))
	// Refused for the reason it must be: the confirmation names a CA that
	// is no longer the site's (the refusal prints the current one).
	again := s.troupeRun(ctx, "run", "ca-rebuild", "-p", "confirm="+old)
	if again.code != 1 || len(again.with("changed")) != 0 || fp() != now || !strings.Contains(strings.Join(again.with("failed"), ""), now) {
		t.Errorf("ca-rebuild again with the old confirmation: exit %d, changed %v, failed %v (want exit 1, nothing changed, the current fingerprint %s named)",
			again.code, again.with("changed"), again.with("failed"), now)
	}
}
