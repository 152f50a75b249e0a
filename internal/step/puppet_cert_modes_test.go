package step

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/report"
)

// One test per mode of PuppetCert for what puppet_cert_test.go leaves out.

// check: a host without a certificate is "missing"; nothing runs on the
// CA, nothing is requested; once bootstrapped, the check says ok.
func TestPuppetCertCheckMissingThenOK(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	ca, host := s.hosts["ca.lab.test"], s.hosts["compile1.lab.test"]
	check := compilerCert()
	check.Check = true
	res, err := check.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Changed || res.Data.(map[string]any)["state"] != "missing" || !strings.Contains(res.Msg, "no certificate at "+sslDir) {
		t.Fatalf("check of a host without a certificate: %+v %v", res, err)
	}
	if len(ca.ran()) != 0 || len(host.ranMatching("submit_request")) != 0 {
		t.Errorf("a check ran on the CA %q, or requested a certificate", ca.ran())
	}
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	res, err = check.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Changed || res.Data.(map[string]any)["state"] != "ok" || !strings.Contains(res.Msg, "certificate OK") {
		t.Errorf("check after the bootstrap: %+v %v", res, err)
	}
}

// bootstrap: a certificate that is not OK for another reason than its
// names or a revocation (here the host trusts another CA) is refused with
// the reason, and never replaced; a check says "invalid".
func TestPuppetCertBootstrapRefusesAnInvalidCertificate(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	host := s.hosts["compile1.lab.test"]
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	host.set(sslDir+"/certs/ca.pem", otherCA(t))
	_, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test"))
	if err == nil || strings.Contains(err.Error(), "reissue it deliberately") {
		t.Fatalf("bootstrap over a certificate of another CA: %v", err)
	}
	if n := len(host.ranMatching("submit_request")) + len(host.ranMatching("ssl clean")); n != 1 {
		t.Errorf("bootstrap replaced the certificate: %v", host.ran())
	}
	check := compilerCert()
	check.Check = true
	res, err := check.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Data.(map[string]any)["state"] != "invalid" || res.Data.(map[string]any)["problem"] == nil {
		t.Errorf("check: %+v %v", res, err)
	}
}

// reissue under --noop says what it would do, and does none of it.
func TestPuppetCertReissueNoop(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	ca, host := s.hosts["ca.lab.test"], s.hosts["compile1.lab.test"]
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	s.noop = true
	wider := compilerCert()
	wider.DNSAltNames, wider.Reissue = append(wider.DNSAltNames, "puppet-alias.lab.test"), true
	res, err := wider.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed || res.Msg != "would reissue compile1.lab.test" || res.Data.(map[string]any)["state"] != "names" {
		t.Fatalf("reissue under --noop: %+v %v", res, err)
	}
	for _, c := range []string{"cmp -s", "ssl clean", "submit_request"} {
		if n := len(host.ranMatching(c)); n != map[string]int{"submit_request": 1}[c] {
			t.Errorf("%q ran %d times under --noop", c, n)
		}
	}
	if n := len(ca.ranMatching("ca clean")) + len(ca.ranMatching("ca sign")); n != 1 {
		t.Errorf("the CA cleaned or signed under --noop: %q", ca.ran())
	}
	var would []string
	for _, e := range s.events {
		if e.Kind == report.WouldRun {
			would = append(would, e.Text)
		}
	}
	if len(would) != 1 || !strings.Contains(would[0], "back up, revoke and replace compile1.lab.test's certificate") {
		t.Errorf("would-run events %q", would)
	}
}

// otherCA is the PEM of a CA certificate that signed nothing of the site's.
func otherCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Puppet CA: elsewhere"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte{9, 9, 9, 9}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
