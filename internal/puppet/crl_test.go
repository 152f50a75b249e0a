package puppet

import (
	"crypto/x509"
	"strings"
	"testing"
)

func (ca *testCA) crl(t *testing.T, number int64, serials ...int64) []byte {
	t.Helper()
	return ca.CRL(t, number, serials...)
}

func (ca *testCA) issueSerial(t *testing.T, serial int64) *x509.Certificate {
	t.Helper()
	return ca.IssueSerial(t, serial)
}

func TestCheckCRL(t *testing.T) {
	ca, other := newNamedCA(t, "Puppet CA: ca"), newNamedCA(t, "Puppet CA: elsewhere")
	two := ca.crl(t, 2, 5)
	if err := CheckCRL(two, ca.pem, nil); err != nil {
		t.Errorf("a CRL of the host's CA: %v", err)
	}
	if err := CheckCRL(two, ca.pem, ca.crl(t, 1)); err != nil {
		t.Errorf("a newer CRL: %v", err)
	}
	if err := CheckCRL(ca.crl(t, 1), ca.pem, two); err == nil || !strings.Contains(err.Error(), "older") {
		t.Errorf("an older CRL over a newer one: %v", err)
	}
	if err := CheckCRL(other.crl(t, 9), ca.pem, nil); err == nil || !strings.Contains(err.Error(), "not signed by a CA this host trusts") {
		t.Errorf("another CA's CRL: %v", err)
	}
	// A chain: the host trusts both, the file carries both CRLs.
	chain := append(append([]byte{}, ca.pem...), other.pem...)
	if err := CheckCRL(append(two, other.crl(t, 1)...), chain, nil); err != nil {
		t.Errorf("a CRL per CA of the chain: %v", err)
	}
	if err := CheckCRL([]byte("junk"), ca.pem, nil); err == nil {
		t.Error("junk accepted as a CRL")
	}
}

func TestRevoked(t *testing.T) {
	ca, other := newNamedCA(t, "Puppet CA: ca"), newNamedCA(t, "Puppet CA: elsewhere")
	crl := ca.crl(t, 3, 5, 7)
	if _, revoked, err := Revoked(ca.issueSerial(t, 7), crl); err != nil || !revoked {
		t.Errorf("serial 7 on the CRL: revoked %v, %v", revoked, err)
	}
	if _, revoked, _ := Revoked(ca.issueSerial(t, 6), crl); revoked {
		t.Error("serial 6 is not on the CRL")
	}
	if _, revoked, _ := Revoked(other.issueSerial(t, 7), crl); revoked {
		t.Error("serial 7 of another CA is not this CRL's business")
	}
	if _, _, err := Revoked(ca.issueSerial(t, 7), []byte("junk")); err == nil {
		t.Error("an unreadable CRL: no error")
	}
}
