package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	agentReport(t, agents.stop(), [2]time.Time{})
	if r.code != 0 {
		t.Fatalf("regen-cert: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	t.Logf("regen-cert: %s, %d changed; PER COMPILER: %s", r.wall.Round(time.Second), len(r.with("changed")), perHost("compilers/", r))
	var fqdns []string
	for _, c := range compilers {
		fqdns = append(fqdns, c+".lab.test")
	}
	if got := drained(r); strings.Join(got, ",") != strings.Join(fqdns, ",") {
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
		crl := s.ssh("ca", "openssl crl -noout -text -in $(puppet config print cadir --section server)/ca_crl.pem")
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
	if second.code != 0 || len(second.with("changed")) != 0 || len(drained(second)) != 0 {
		t.Errorf("second regen-cert: exit %d, changed %v, drained %v", second.code, second.with("changed"), drained(second))
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
	var lines []string
	for _, e := range r.events {
		if e.Step == "expiry" && e.Kind == "host_line" {
			lines = append(lines, e.Text)
		}
	}
	report := strings.Join(lines, "\n")
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
