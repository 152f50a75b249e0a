package puppet

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// resign signs c again (same subject, key, SKI; the given serial) with the
// issuer's key, for another validity.
func resign(t *testing.T, c *x509.Certificate, issuer *x509.Certificate, issuerKey any, serial int64, notAfter time.Time) []byte {
	t.Helper()
	tpl := *c
	tpl.SerialNumber, tpl.NotAfter = big.NewInt(serial), notAfter
	der, err := x509.CreateCertificate(rand.Reader, &tpl, issuer, c.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCheckRenewedBundle(t *testing.T) {
	ca := newNamedCA(t, "Puppet CA: ca")
	later := ca.cert.NotAfter.Add(365 * 24 * time.Hour)
	renewed := resign(t, ca.cert, ca.cert, ca.key, 1, later)
	if err := CheckRenewedBundle(renewed, ca.pem); err != nil {
		t.Errorf("same CA, longer: %v", err)
	}
	if err := SameCA(ca.pem, renewed); err != nil {
		t.Errorf("SameCA: %v", err)
	}
	if err := CheckRenewedBundle(resign(t, ca.cert, ca.cert, ca.key, 7, later), ca.pem); err == nil || !strings.Contains(err.Error(), "serial") {
		t.Errorf("another serial: %v", err)
	}
	if err := CheckRenewedBundle(resign(t, ca.cert, ca.cert, ca.key, 1, ca.cert.NotAfter.Add(-time.Hour)), ca.pem); err == nil || !strings.Contains(err.Error(), "before") {
		t.Errorf("shorter: %v", err)
	}
	other := newNamedCA(t, "Puppet CA: ca")
	if err := CheckRenewedBundle(other.pem, ca.pem); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Errorf("another key: %v", err)
	}
	if err := SameCA(ca.pem, other.pem); err == nil || !strings.Contains(err.Error(), "another CA") {
		t.Errorf("SameCA of another CA: %v", err)
	}
	if err := CheckRenewedBundle(append(renewed, other.pem...), ca.pem); err == nil {
		t.Error("a bundle with an extra certificate accepted")
	}
}
