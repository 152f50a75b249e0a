package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The CA's directory on the CA (read on the host), and the standby's
// current snapshot of it (roles/files/ca-replica-receive.sh).
const (
	caDir      = "$(puppet config print cadir --section server)"
	replicaDir = "/var/lib/troupe-replica/data/current"
	// caReplicaBound is how long a signing or a revocation may take to be
	// in the standby's current snapshot: the path unit starts the push on
	// the CA's write, and one push of a small directory takes well under a
	// second on the lab.
	caReplicaBound = 10 * time.Second
	// caRetryBound: a push that failed is retried by the timer 30 s after
	// the failed run (AccuracySec=1s), plus the push.
	caRetryBound = 40 * time.Second
)

// caReplicaSum is what the push carries that matters, on a host, from dir:
// the serial, the inventory, the CRL and the CA certificate.
func (s *site) caReplicaSum(host, dir string) string {
	s.t.Helper()
	return strings.TrimSpace(s.ssh(host, "cd "+dir+" && cat serial inventory.txt ca_crl.pem ca_crt.pem | sha256sum | cut -d' ' -f1"))
}

// awaitReplica polls the standby every 100 ms until cond holds of it, up
// to bound; it returns the time taken, and fails the test beyond it.
func (s *site) awaitReplica(what string, bound time.Duration, cond func() bool) time.Duration {
	s.t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > bound {
			s.t.Fatalf("%s: not on the standby CA within %s\nCA: %s\nstandby: %s\npush: %s", what, bound,
				s.ssh("ca", "cat "+caDir+"/serial; cat /var/lib/troupe/ca-replica.state"),
				s.ssh("ca2", "readlink "+replicaDir+"; cat "+replicaDir+"/serial"),
				s.l.Journal("ca", "troupe-ca-replica.service", 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(t0)
}

// caStandbyScenario: the CA pushes its directory to the standby CA on every
// change. A certificate signed and then revoked on the CA is in the
// standby's snapshot within caReplicaBound, each measured; the standby's
// copy is then the CA's (the same serial, inventory, CRL and certificate).
// The standby's puppetserver is masked (never a second CA). The push's key
// runs the receiver and nothing else: `id` through it prints nothing and
// moves nothing, beside the pushes it made. A push that fails (the
// standby's snapshot directory closed) is retried by the timer, within
// caRetryBound.
func caStandbyScenario(ctx context.Context, t *testing.T, s *site) {
	if !s.l.Spec.CAStandby {
		t.Fatal("this suite's lab has no standby CA")
	}
	if got := strings.TrimSpace(s.ssh("ca2", "systemctl is-enabled puppetserver || true")); got != "masked" {
		t.Errorf("the standby's puppetserver is %q, want masked", got)
	}
	if out, rc := s.sshRC("ca2", "systemctl is-active --quiet puppetserver"); rc == 0 {
		t.Errorf("the standby's puppetserver runs: %s", out)
	}
	if ca, standby := s.caReplicaSum("ca", caDir), s.caReplicaSum("ca2", replicaDir); ca != standby {
		t.Fatalf("before anything: the standby's snapshot is not the CA's (%s, %s)", standby, ca)
	}
	s.statusSaysReplica(ctx, true)

	// A signing: the certificate is in the standby's inventory.
	run := time.Now().Unix() // certnames of this run (a rerun on a dev lab signs new ones)
	probe := fmt.Sprintf("replica-probe-%d.%s", run, s.l.Spec.Domain)
	s.ssh("ca", "puppetserver ca generate --certname "+probe+" >/dev/null")
	lag := s.awaitReplica("the signing of "+probe, caReplicaBound, func() bool {
		_, rc := s.sshRC("ca2", "grep -q ' /CN="+probe+"$' "+replicaDir+"/inventory.txt")
		return rc == 0
	})
	t.Logf("signed %s on the CA: in the standby's inventory %.2f s later (bound %s)", probe, lag.Seconds(), caReplicaBound)
	record(t, "sign_to_standby_s", lag.Seconds(), "s")
	if ca, standby := s.caReplicaSum("ca", caDir), s.caReplicaSum("ca2", replicaDir); ca != standby {
		t.Errorf("after the signing: the standby's serial, inventory, CRL or CA certificate is not the CA's")
	}

	// A revocation: the standby's CRL is the CA's new one, which lists it.
	crl := func(host, dir string) string {
		return strings.TrimSpace(s.ssh(host, "sha256sum "+dir+"/ca_crl.pem | cut -d' ' -f1"))
	}
	before := crl("ca", caDir)
	s.ssh("ca", "puppetserver ca revoke --certname "+probe+" >/dev/null")
	after := crl("ca", caDir)
	if after == before {
		t.Fatalf("the CA's CRL did not change with the revocation of %s", probe)
	}
	lag = s.awaitReplica("the revocation of "+probe, caReplicaBound, func() bool { return crl("ca2", replicaDir) == after })
	t.Logf("revoked %s on the CA: its CRL on the standby %.2f s later (bound %s)", probe, lag.Seconds(), caReplicaBound)
	record(t, "revoke_to_standby_s", lag.Seconds(), "s")
	serial := strings.TrimSpace(s.ssh("ca", "openssl x509 -noout -serial -in "+caDir+"/signed/"+probe+".pem 2>/dev/null || "+
		"grep ' /CN="+probe+"$' "+caDir+"/inventory.txt | tail -1 | cut -d' ' -f1"))
	if serial == "" {
		t.Fatalf("no serial for %s in the CA's inventory", probe)
	}
	crlText := s.ssh("ca2", "openssl crl -noout -text -in "+replicaDir+"/ca_crl.pem")
	if !slices.Contains(crlSerials(crlText), hexSerial(serial)) {
		t.Errorf("the standby's CRL does not list %s's serial %s (it lists %v)", probe, serial, crlSerials(crlText))
	}

	// The key does nothing else: `id` through it prints nothing and
	// moves nothing (the pushes above are its control).
	target := s.ssh("ca2", "readlink "+replicaDir)
	out, rc := s.sshRC("ca", "ssh -F none -i /etc/troupe/ca-replica/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes "+
		"-o UserKnownHostsFile=/etc/troupe/ca-replica/known_hosts troupe-replica@ca2."+s.l.Spec.Domain+" id </dev/null")
	if rc == 0 || strings.Contains(out, "uid=") {
		t.Errorf("the replication key ran `id` on the standby (exit %d):\n%s", rc, out)
	}
	if now := s.ssh("ca2", "readlink "+replicaDir); now != target {
		t.Errorf("an empty push moved the standby's snapshot: %s → %s", target, now)
	}

	// A push that fails is retried: the snapshots' directory closed, a
	// signing is not pushed; opened again, the timer pushes it.
	s.ssh("ca2", "chmod 000 /var/lib/troupe-replica/data/snapshots")
	second := fmt.Sprintf("replica-probe2-%d.%s", run, s.l.Spec.Domain)
	s.ssh("ca", "puppetserver ca generate --certname "+second+" >/dev/null")
	failed := false
	for deadline := time.Now().Add(caReplicaBound); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if st := strings.TrimSpace(s.ssh("ca", "systemctl show -P Result troupe-ca-replica.service")); st != "success" {
			failed = true
			break
		}
	}
	if !failed {
		s.ssh("ca2", "chmod 700 /var/lib/troupe-replica/data/snapshots")
		t.Fatalf("the push with the standby's snapshots closed did not fail: %s", s.l.Journal("ca", "troupe-ca-replica.service", 10))
	}
	s.statusSaysReplica(ctx, false)
	s.ssh("ca2", "chmod 700 /var/lib/troupe-replica/data/snapshots")
	opened := time.Now()
	lag = s.awaitReplica("the signing of "+second+" after a failed push", caRetryBound, func() bool {
		_, rc := s.sshRC("ca2", "grep -q ' /CN="+second+"$' "+replicaDir+"/inventory.txt")
		return rc == 0
	})
	t.Logf("a failed push: retried by the timer, %s in the standby's inventory %.1f s after the standby took pushes again (bound %s)",
		second, lag.Seconds(), caRetryBound)
	record(t, "retry_to_standby_s", time.Since(opened).Seconds(), "s")
	if ca, standby := s.caReplicaSum("ca", caDir), s.caReplicaSum("ca2", replicaDir); ca != standby {
		t.Errorf("after the retry: the standby's copy is not the CA's")
	}
	s.statusSaysReplica(ctx, true)
}

// statusSaysReplica: `troupe status` says the standby holds what the CA
// holds (exit 0, the CA in sync with lag 0, the standby's serial the CA's,
// its puppetserver inactive), or, with inSync false, that the last push
// failed (exit 1, the problem named on the CA).
func (s *site) statusSaysReplica(ctx context.Context, inSync bool) {
	s.t.Helper()
	st, code := s.status(ctx)
	var ca, standby *hostStatus
	for i, h := range st.Hosts {
		switch h.Name {
		case "ca." + s.l.Spec.Domain:
			ca = &st.Hosts[i]
		case "ca2." + s.l.Spec.Domain:
			standby = &st.Hosts[i]
		}
	}
	if ca == nil || standby == nil || ca.Replica == nil || standby.Replica == nil {
		s.t.Fatalf("troupe status has no CA replica rows: %+v", st.Hosts)
	}
	if !inSync {
		if code != 1 || ca.Replica.InSync || !strings.Contains(st.problems(), "the last push to the standby CA failed") {
			s.t.Errorf("troupe status with a failed push: exit %d, CA in sync %v, problems:\n%s", code, ca.Replica.InSync, st.problems())
		}
		return
	}
	serial := strings.TrimSpace(s.ssh("ca", "cat "+caDir+"/serial"))
	if code != 0 || !ca.Replica.InSync || ca.Replica.Lag != 0 || hexSerial(standby.Replica.Serial) != hexSerial(serial) ||
		standby.Replica.Server != "inactive" {
		s.t.Errorf("troupe status on a standby in sync: exit %d, CA %+v, standby %+v (the CA's serial %s); problems:\n%s",
			code, *ca.Replica, *standby.Replica, serial, st.problems())
	}
}

// crlSerials are the serials `openssl crl -text` lists, as hexSerial.
func crlSerials(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`Serial Number: ([0-9A-Fa-f]+)`).FindAllStringSubmatch(text, -1) {
		out = append(out, hexSerial(m[1]))
	}
	return out
}

// hexSerial is a serial in hex, upper case, without 0x or leading zeros.
func hexSerial(s string) string {
	s = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "serial="), "0x"))
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}
