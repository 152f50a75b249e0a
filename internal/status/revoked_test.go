package status

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/puppet/puppettest"
)

// certSection is the cert section a host holding c answers: openssl's own
// words, as the probe script runs it.
func certSection(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	cmd := exec.Command("openssl", "x509", "-noout", "-serial", "-issuer", "-enddate", "-ext", "subjectAltName")
	cmd.Stdin = strings.NewReader(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	cmd.Env = []string{"LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl (scripts/install-test-deps.sh installs it): %v\n%s", err, out)
	}
	return "\n" + marker + " cert\n" + string(out) + pemMarker + "\n" + marker + " end 0\n"
}

// A host whose certificate serial the CA's CRL lists is flagged (bad, exit
// 1); a host of the same CA whose serial is not listed, and a host whose
// serial is listed by another CA's CRL, are not.
func TestRevokedCertificateFlagged(t *testing.T) {
	ca := puppettest.NewCA(t, "Puppet CA: ca.test")
	other := puppettest.NewCA(t, "Puppet Root CA: 0123")
	revoked := ca.IssueSerial(t, 0xabc) // odd hex digits: openssl prints 0ABC
	kept := ca.IssueSerial(t, 0xabd)
	read := func(crl []byte) *Site {
		caAnswer := fixture(t, "ca-healthy") + "\n" + marker + " crlpem\n" + string(crl) + marker + " end 0\n"
		hosts := []*Host{
			fromText(t, caAnswer, "ca.lab.test", false, RoleCA),
			fromText(t, certSection(t, revoked), "agent1.test", false, RoleAgent),
			fromText(t, certSection(t, kept), "agent2.test", false, RoleAgent),
		}
		return Judge(hosts, time.Now(), time.Minute) // the test certificates last an hour

	}
	// the CA's CRL, with the root's (listing agent2's serial) beside it
	site := read(append(ca.CRL(t, 2, 0xabc, 0x99), other.CRL(t, 1, 0xabd)...))
	a1, a2 := host(t, site, "agent1.test"), host(t, site, "agent2.test")
	if a1.Cert.Serial != "0ABC" || a1.Cert.Issuer != "Puppet CA: ca.test" {
		t.Fatalf("serial and issuer not read: %+v", a1.Cert)
	}
	if !a1.Cert.Revoked || a1.Cert.Level != Bad || a1.Level != Bad || site.Healthy {
		t.Errorf("revoked agent1: %+v, row %s, site healthy %v", a1.Cert, a1.Level, site.Healthy)
	}
	if a2.Cert.Revoked || a2.Level != OK {
		t.Errorf("agent2 (not on its CA's CRL) flagged: %+v %+v", a2.Cert, site.Problems)
	}
	if c := host(t, site, "ca.lab.test").CA; c.Revoked != 3 || c.Error != "" {
		t.Errorf("CA: %d revoked serials read, want 3 (%s)", c.Revoked, c.Error)
	}
	tab := plainTable(site)
	if !strings.Contains(tab, "bad  agent1.test cert: certificate (serial 0ABC) is revoked: the CRL of Puppet CA: ca.test lists it") ||
		!strings.Contains(tab, "REVOKED") {
		t.Errorf("table:\n%s", tab)
	}
	js, _ := json.Marshal(a1)
	if !strings.Contains(string(js), `"revoked":true`) {
		t.Errorf("json: %s", js)
	}

	// the control: the same hosts, a CRL not listing agent1
	site = read(ca.CRL(t, 3, 0x99))
	if a1 := host(t, site, "agent1.test"); a1.Cert.Revoked || a1.Level != OK || !site.Healthy {
		t.Errorf("agent1 flagged without being listed: %+v %+v", a1.Cert, site.Problems)
	}
	// a CRL that cannot be read is the CA's problem, not a clean bill
	site = read([]byte("not a CRL\n"))
	if c := host(t, site, "ca.lab.test"); c.Level != Bad || !strings.Contains(c.CA.Error, "CRL serials") {
		t.Errorf("unreadable CRL: %+v", c.CA)
	}
}
