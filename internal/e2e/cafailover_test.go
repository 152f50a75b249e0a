package e2e

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// serialMargin is plan ca-failover's default serial_margin.
const serialMargin = 10000

// caFailoverScenario: the CA dies and the standby takes over.
//
//   - While the CA serves, ca-failover is refused and changes nothing (the
//     name still goes to the CA).
//   - A certificate signed and revoked on the CA reaches the standby; then
//     the CA is halted (a power loss). ca-failover fences nothing it cannot
//     reach (the CA's steps skipped as unreachable), promotes the standby,
//     and moves ca_name (HAProxy's SNI route) to it.
//   - The promoted CA is the same CA (fingerprint), its inventory holds the
//     certificate signed before the halt and its CRL the revocation, its
//     serial counter is past the last pushed one by the margin; a new
//     certificate requested through ca_name is signed there with a serial
//     past that margin; an agent run through the load balancer works.
//   - Power comes back to the old CA and its puppetserver starts again (a
//     second CA), but ca_name stays with the new one; ca-failover run again
//     fences the old CA (stopped, masked, pushing nothing) without force,
//     and changes nothing on the new CA.
//   - bootstrap with the inventory as it was is refused on the fenced CA;
//     with ca and ca_standby swapped it makes the old CA the standby, the
//     new CA pushes to it, and troupe status says the site is healthy; a
//     revocation on the new CA is refused by TLS on every server.
//   - ca-failback makes the original CA the CA again, with what the other
//     signed and revoked and its counter past the margin; with the groups
//     swapped back, bootstrap makes ca2 the standby again.
//
// Last on its suite: it halts the CA.
func caFailoverScenario(ctx context.Context, t *testing.T, s *site) {
	if !s.l.Spec.CAStandby {
		t.Fatal("this suite's lab has no standby CA")
	}
	d, caName := s.l.Spec.Domain, s.l.Spec.CAName()
	oldCA, newCA := "ca."+d, "ca2."+d
	// servedBy is the certificate subject an agent meets at ca_name (the
	// load balancer, which routes it by SNI).
	servedBy := func() string {
		subject := s.ssh("agent1", "openssl s_client -connect "+caName+":8140 -servername "+caName+
			" </dev/null 2>/dev/null | openssl x509 -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p'")
		return "CN = " + strings.TrimSpace(subject)
	}
	if got := servedBy(); got != "CN = "+oldCA {
		t.Fatalf("before: %s serves %q, want the CA %s", caName, got, oldCA)
	}

	// Refused while the CA serves; nothing changed.
	r := s.troupeRun(ctx, "run", "ca-failover")
	if failed := strings.Join(r.with("failed"), "\n"); r.code == 0 || !strings.Contains(failed, "is up and serving") {
		t.Fatalf("ca-failover while the CA serves: exit %d, want a refusal naming it:\n%s\n%s", r.code, failed, r.stderr)
	}
	if ch := r.with("changed"); len(ch) != 0 {
		t.Errorf("the refused ca-failover changed %v", ch)
	}
	if got := servedBy(); got != "CN = "+oldCA {
		t.Errorf("after the refusal %s serves %q", caName, got)
	}

	// A signing and a revocation on the CA, in the standby's snapshot.
	probe := fmt.Sprintf("failover-probe-%d.%s", time.Now().Unix(), d)
	s.ssh("ca", "puppetserver ca generate --certname "+probe+" >/dev/null && puppetserver ca revoke --certname "+probe+" >/dev/null")
	probeSerial := hexSerial(strings.Fields(s.ssh("ca", "grep ' /CN="+probe+"$' "+caDir+"/inventory.txt | tail -1"))[0])
	s.awaitReplica("the signing and revocation of "+probe, caReplicaBound, func() bool {
		return s.caReplicaSum("ca", caDir) == s.caReplicaSum("ca2", replicaDir)
	})
	pushed := hexSerial(s.ssh("ca", "cat "+caDir+"/serial"))
	fingerprint := s.ssh("ca", "openssl x509 -noout -fingerprint -sha256 -in "+caDir+"/ca_crt.pem")

	// The CA dies, under agent2's loop of runs (the CA is not on the
	// catalog's path: no run may fail).
	agents := startAgentLoop(t, s, "agent2")
	if err := s.l.Halt("ca"); err != nil {
		t.Fatal(err)
	}
	halted := time.Now()
	r = s.troupeRun(ctx, "run", "ca-failover")
	failover := riskWindow{"the CA halted, ca-failover", [2]time.Time{halted, time.Now()}}
	if r.code != 0 {
		t.Fatalf("ca-failover with the CA halted: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	took := time.Since(halted)
	// Every step that runs on the halted CA is skipped as unreachable
	// (fence/standby-state runs on the standby for it, has-standby's when
	// is false); the fence was tried, not left out.
	var unreachable []string
	for _, e := range r.events {
		if e.Kind != "host_result" || e.Host != oldCA {
			continue
		}
		switch {
		case e.Status == "skipped" && strings.HasPrefix(e.Reason, "unreachable: "):
			unreachable = append(unreachable, e.Step)
		case e.Status == "changed" || e.Status == "failed":
			t.Errorf("step %s on the halted CA: %s (%s)", e.Step, e.Status, e.Reason)
		}
	}
	for _, want := range []string{"fence/serving", "fence/stop", "fence/mask", "fence/state"} {
		if !slices.Contains(unreachable, want) {
			t.Errorf("%s was not skipped as unreachable on the halted CA (skipped so: %v)", want, unreachable)
		}
	}
	t.Logf("ca-failover with the CA halted: %s (the run %s)", took.Round(time.Second), r.wall.Round(time.Second))

	// The same CA, with everything the old one pushed, serving at ca_name.
	if got := servedBy(); got != "CN = "+newCA {
		t.Fatalf("after ca-failover %s serves %q, want %s", caName, got, newCA)
	}
	if got := s.ssh("ca2", "openssl x509 -noout -fingerprint -sha256 -in "+caDir+"/ca_crt.pem"); got != fingerprint {
		t.Errorf("the promoted CA is another CA: %s, was %s", got, fingerprint)
	}
	if _, rc := s.sshRC("ca2", "grep -q ' /CN="+probe+"$' "+caDir+"/inventory.txt"); rc != 0 {
		t.Errorf("the promoted CA's inventory lacks %s, signed before the halt", probe)
	}
	if crl := crlSerials(s.ssh("ca2", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem")); !slices.Contains(crl, probeSerial) {
		t.Errorf("the promoted CA's CRL lacks %s's serial %s (it lists %v)", probe, probeSerial, crl)
	}
	// the pushed counter is past every serial in the inventory: the new
	// one is exactly the margin past it
	floor := new(big.Int).Add(hexInt(t, pushed), big.NewInt(serialMargin))
	if counter := hexInt(t, s.ssh("ca2", "cat "+caDir+"/serial")); counter.Cmp(floor) != 0 {
		t.Errorf("the promoted CA's serial counter is %X, want the pushed %s + %d = %X", counter, pushed, serialMargin, floor)
	}
	fresh := fmt.Sprintf("failover-new-%d.%s", time.Now().Unix(), d)
	s.ssh("agent1", "puppet ssl submit_request --certname "+fresh+" >/dev/null")
	s.ssh("ca2", "puppetserver ca sign --certname "+fresh+" >/dev/null")
	s.ssh("agent1", "puppet ssl download_cert --certname "+fresh+" >/dev/null")
	newCert := time.Since(halted)
	t.Logf("the CA halted: a new certificate signed by the standby through %s %s later", caName, newCert.Round(time.Second))
	seconds(t, "ca-failover: the CA halted to a new certificate from the standby", newCert)
	freshCert := clientCert{"$(puppet config print certdir)/" + fresh + ".pem", "$(puppet config print privatekeydir)/" + fresh + ".pem"}
	issued := s.ssh("agent1", "openssl x509 -noout -serial -in "+freshCert.cert)
	if n := hexInt(t, strings.TrimPrefix(strings.TrimSpace(issued), "serial=")); n.Cmp(floor) < 0 {
		t.Errorf("a certificate signed after the failover has serial %X, not past %X: it may repeat one the old CA issued", n, floor)
	}
	// agent1: agent2 runs its loop, and a second run there at the same time
	// fails with "already in progress" (it did once on the lab)
	if out, rc := s.agentRun("agent1"); rc != 0 && rc != 2 {
		t.Errorf("an agent run after the failover: exit %d\n%s", rc, out)
	}

	// Power comes back to the old CA: its puppetserver starts again, a
	// second CA, which the name does not reach; ca-failover fences it.
	if err := s.l.PowerOn(ctx, "ca"); err != nil {
		t.Fatal(err)
	}
	if st := strings.TrimSpace(s.ssh("ca", "systemctl is-active puppetserver || true")); st != "active" && st != "activating" {
		t.Errorf("the old CA's puppetserver is %q after power came back; the fence below proves nothing", st)
	}
	if got := servedBy(); got != "CN = "+newCA {
		t.Errorf("with the old CA back %s serves %q, want %s", caName, got, newCA)
	}
	r = s.troupeRun(ctx, "run", "ca-failover")
	// the runs crossed the failover; the fence of the old CA is a few
	// seconds, too short to be sure a run crosses it, and takes nothing
	// from the agents' path (the name is the new CA's): checked, not a window
	agentReport(t, agents.stop(), failover)
	if r.code != 0 {
		t.Fatalf("ca-failover with the old CA back: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	uniqueSerials(t, s.ssh("ca", "cat "+caDir+"/inventory.txt"), s.ssh("ca2", "cat "+caDir+"/inventory.txt"))
	for _, c := range r.with("changed") {
		if !strings.HasSuffix(c, " "+oldCA) {
			t.Errorf("ca-failover run again changed %s: only the old CA's fence may change", c)
		}
	}
	fence := s.ssh("ca", "systemctl is-enabled puppetserver || true; systemctl is-active puppetserver || true; "+
		"systemctl is-active troupe-ca-replica.path || true; sed -n 's/^state=//p' /etc/troupe/ca-state")
	// failed: a stop while the JVM was starting ends it with an error status
	if f := strings.Fields(fence); len(f) != 4 || f[0] != "masked" || f[1] != "inactive" && f[1] != "failed" || f[2] != "inactive" || f[3] != "fenced" {
		t.Errorf("the old CA after the fence: puppetserver enabled/active, push unit, state = %q, want masked, inactive or failed, inactive, fenced", f)
	}

	// bootstrap refuses the fenced CA; with the groups swapped it makes
	// the old CA the standby.
	r = s.troupeRun(ctx, "run", "bootstrap")
	if failed := strings.Join(r.with("failed"), "\n"); r.code == 0 || !strings.Contains(failed, "Swap the groups ca and ca_standby") {
		t.Errorf("bootstrap on the fenced CA: exit %d, want the refusal:\n%s", r.code, failed)
	}
	if ch := r.with("changed"); len(ch) != 0 {
		t.Errorf("the refused bootstrap changed %v", ch)
	}
	s.swapAndRejoin(ctx, "ca2", "ca")

	// A revocation on the promoted CA reaches every server: the new
	// certificate refused by TLS beside agent1's, served.
	control := clientCert{"$(puppet config print hostcert)", "$(puppet config print hostprivkey)"}
	endpoints := append(s.compilers(), "puppet")
	const path = "/puppet/v3/environments"
	for h, p := range s.tlsSweep("agent1", endpoints, path, freshCert, control) {
		if !p.probe.accepted() || !p.control.accepted() {
			t.Fatalf("before the revocation, %s answers the new certificate with %s and agent1's with %s; want both served", h, p.probe, p.control)
		}
	}
	r = s.troupeRun(ctx, "run", "revoke", "-p", "certname="+fresh)
	if r.code != 0 {
		t.Fatalf("revoke on the promoted CA: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	const refusalBound = 30 * time.Second // as the revoke scenario's
	if refused := s.refusedBy("agent1", endpoints, path, freshCert, control, time.Now().Add(refusalBound)); len(refused) != len(endpoints) {
		t.Errorf("the revocation on the promoted CA: refused by TLS on %v of %v within %s", refused, endpoints, refusalBound)
	}
	freshSerial := hexSerial(strings.TrimPrefix(strings.TrimSpace(issued), "serial="))
	s.ssh("agent1", "puppet ssl clean --certname "+fresh+" >/dev/null")

	// Fail back: the original CA the CA again, with what ca2 signed and
	// revoked, its counter the margin past ca2's; then the groups swapped
	// back, and ca2 the standby.
	counter := hexInt(t, s.ssh("ca2", "cat "+caDir+"/serial"))
	r = s.troupeRun(ctx, "run", "ca-failback")
	if r.code != 0 {
		t.Fatalf("ca-failback: exit %d\n%s\n%s", r.code, strings.Join(r.with("failed"), "\n"), r.stderr)
	}
	seconds(t, "ca-failback: the original CA serving again", r.wall)
	if got := servedBy(); got != "CN = "+oldCA {
		t.Errorf("after ca-failback %s serves %q, want %s", caName, got, oldCA)
	}
	if _, rc := s.sshRC("ca", "grep -q ' /CN="+fresh+"$' "+caDir+"/inventory.txt"); rc != 0 {
		t.Errorf("after the failback the CA's inventory lacks %s, signed on ca2", fresh)
	}
	if crl := crlSerials(s.ssh("ca", "openssl crl -noout -text -in "+caDir+"/ca_crl.pem")); !slices.Contains(crl, freshSerial) {
		t.Errorf("after the failback the CA's CRL lacks %s's serial %s, revoked on ca2 (it lists %v)", fresh, freshSerial, crl)
	}
	want := new(big.Int).Add(counter, big.NewInt(serialMargin))
	if got := hexInt(t, s.ssh("ca", "cat "+caDir+"/serial")); got.Cmp(want) != 0 {
		t.Errorf("after the failback the CA's serial counter is %X, want ca2's %X + %d", got, counter, serialMargin)
	}
	uniqueSerials(t, s.ssh("ca", "cat "+caDir+"/inventory.txt"), s.ssh("ca2", "cat "+caDir+"/inventory.txt"))
	s.swapAndRejoin(ctx, "ca", "ca2")
}

// swapAndRejoin swaps the groups ca and ca_standby in the site's inventory
// and runs bootstrap: standby (a lab host's short name), the CA before,
// becomes the standby (state=standby, puppetserver masked), the CA's
// directory reaches its snapshot within caReplicaBound, and troupe status
// exits 0.
func (s *site) swapAndRejoin(ctx context.Context, ca, standby string) {
	t := s.t
	t.Helper()
	s.inv = swapCA(t, s.inv, s.dir)
	s.troupe(ctx, "run", "bootstrap")
	if st := strings.TrimSpace(s.ssh(standby, "sed -n 's/^state=//p' /etc/troupe/ca-state; systemctl is-enabled puppetserver || true")); st != "standby\nmasked" {
		t.Errorf("%s after bootstrap with the groups swapped: %q, want standby and masked", standby, st)
	}
	s.awaitReplica("the CA's directory on "+standby, caReplicaBound, func() bool {
		return s.caReplicaSum(ca, caDir) == s.caReplicaSum(standby, replicaDir)
	})
	if st, code := s.status(ctx); code != 0 {
		t.Errorf("troupe status with %s the CA and %s the standby: exit %d\n%s", ca, standby, code, st.problems())
	}
}

// uniqueSerials: no serial names two certificates across the inventories
// of both CAs (the old one's last state and the promoted one's): the
// entries the push carried are the same line on both, every other serial
// is on one only.
func uniqueSerials(t *testing.T, inventories ...string) {
	t.Helper()
	seen := map[string]string{}
	n := 0
	for _, inv := range inventories {
		for _, l := range strings.Split(strings.TrimSpace(inv), "\n") {
			f := strings.Fields(l)
			if len(f) < 4 {
				continue
			}
			n++
			serial := hexSerial(f[0])
			if was, ok := seen[serial]; ok && was != l {
				t.Errorf("serial %s names two certificates: %q and %q", serial, was, l)
			}
			seen[serial] = l
		}
	}
	if n == 0 {
		t.Error("no inventory entries read: nothing was compared")
	}
	t.Logf("serials: %d distinct across both CAs' inventories (%d entries)", len(seen), n)
}

// hexInt reads a hex serial (0x, "serial=" and leading zeros allowed).
func hexInt(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(hexSerial(s), 16)
	if !ok {
		t.Fatalf("not a hex serial: %q", s)
	}
	return n
}

// swapCA writes a copy of the inventory at path with the groups ca and
// ca_standby swapped (the lab writes each group on one line) and returns
// its path.
func swapCA(t *testing.T, path, dir string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	ca, standby := -1, -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "  ca:"):
			ca = i
		case strings.HasPrefix(l, "  ca_standby:"):
			standby = i
		}
	}
	if ca < 0 || standby < 0 {
		t.Fatalf("%s has no ca and ca_standby lines", path)
	}
	targets := func(l string) string { return strings.TrimSpace(l[strings.Index(l, ":")+1:]) }
	lines[ca], lines[standby] = "  ca: "+targets(lines[standby]), "  ca_standby: "+targets(lines[ca])
	out := filepath.Join(dir, "inventory-ca-swapped.yaml")
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
