package puppet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// dated issues a certificate valid until notAfter, signed by parent (self-signed when nil).
func dated(t *testing.T, cn string, serial int64, notAfter time.Time, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-5 * 365 * 24 * time.Hour), NotAfter: notAfter, IsCA: isCA, BasicConstraintsValid: isCA}
	if isCA {
		tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if parent == nil {
		parent, parentKey = tpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func crlPEM(t *testing.T, issuer *x509.Certificate, key *ecdsa.PrivateKey, number int64, next time.Time) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number),
		ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: next}, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func TestExpiries(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	root, rootKey, rootPEM := dated(t, "Puppet Root CA: ca.lab.test", 1, now.Add(3650*day+time.Hour), true, nil, nil)
	inter, interKey, interPEM := dated(t, "Puppet CA: ca.lab.test", 2, now.Add(1825*day+time.Hour), true, root, rootKey)
	bundle := append(append([]byte{}, interPEM...), rootPEM...)

	cas, err := CertExpiries(bundle, "ca", "ca_crt.pem", "")
	if err != nil || len(cas) != 2 {
		t.Fatalf("bundle: %v %v", cas, err)
	}
	if cas[0].Name != "Puppet CA: ca.lab.test" || cas[1].Name != "Puppet Root CA: ca.lab.test" || cas[0].Kind != "ca" {
		t.Errorf("bundle items %+v", cas)
	}

	// ca_crl.pem holds the CRL of each CA of the chain.
	crls, err := CRLExpiries(append(crlPEM(t, inter, interKey, 7, now.Add(30*day+time.Hour)), crlPEM(t, root, rootKey, 1, now.Add(400*day+time.Hour))...), "ca_crl.pem")
	if err != nil || len(crls) != 2 {
		t.Fatalf("crl: %v %v", crls, err)
	}
	if crls[0].Kind != "crl" || crls[0].Name != "Puppet CA: ca.lab.test" || crls[0].SerialHex() != "0x0007" {
		t.Errorf("crl item %+v", crls[0])
	}

	items := append(cas, crls...)
	for i, h := range []struct {
		name string
		in   time.Duration
	}{
		{"compile1.lab.test", 1800*day + time.Hour},
		{"agent1.lab.test", 20*day + time.Hour}, // inside 90 days
		{"agent2.lab.test", -3*day + time.Hour}, // expired 2 days and 23 hours ago
		{"agent3.lab.test", 91*day + time.Hour}, // just outside
	} {
		_, _, p := dated(t, "cn-ignored-"+h.name, int64(10+i), now.Add(h.in), false, inter, interKey)
		got, err := CertExpiries(p, "cert", h.name+".pem", h.name)
		if err != nil || len(got) != 1 || got[0].Name != h.name {
			t.Fatalf("%s: %v %v", h.name, got, err)
		}
		items = append(items, got...)
	}
	SortExpiries(items)
	horizon := 90 * day
	var lines []string
	for _, e := range items {
		lines = append(lines, fmt.Sprintf("%s %s %d %s %s", e.Kind, e.Name, e.DaysLeft(now), e.SerialHex(), e.State(now, horizon)))
	}
	want := strings.Join([]string{
		"cert agent2.lab.test -3 0x000c expired",
		"cert agent1.lab.test 20 0x000b inside",
		"crl Puppet CA: ca.lab.test 30 0x0007 inside",
		"cert agent3.lab.test 91 0x000d ok",
		"crl Puppet Root CA: ca.lab.test 400 0x0001 ok",
		"cert compile1.lab.test 1800 0x000a ok",
		"ca Puppet CA: ca.lab.test 1825 0x0002 ok",
		"ca Puppet Root CA: ca.lab.test 3650 0x0001 ok",
	}, "\n")
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// A zero horizon flags only what has expired.
	if s := items[1].State(now, 0); s != ExpiryOK {
		t.Errorf("zero horizon: %s", s)
	}
}

func TestExpiryEdges(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[time.Duration]int{0: 0, time.Hour: 0, 24 * time.Hour: 1, -time.Second: -1, -24 * time.Hour: -1, -25 * time.Hour: -2} {
		if got := (Expiry{NotAfter: now.Add(in)}).DaysLeft(now); got != want {
			t.Errorf("DaysLeft(%v) = %d, want %d", in, got, want)
		}
	}
	// RFC 5280: the not-after instant itself is still valid.
	if s := (Expiry{NotAfter: now}).State(now, 0); s != ExpiryOK {
		t.Errorf("at not-after: %s", s)
	}
	if s := (Expiry{NotAfter: now.Add(-time.Nanosecond)}).State(now, time.Hour); s != ExpiryExpired {
		t.Errorf("just past: %s", s)
	}
	if s := (Expiry{}).SerialHex(); s != "-" {
		t.Errorf("no serial: %s", s)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})} {
		if _, err := CertExpiries(bad, "cert", "x.pem", ""); err == nil {
			t.Errorf("%q accepted as a certificate", bad)
		}
		if _, err := CRLExpiries(bad, "x.pem"); err == nil {
			t.Errorf("%q accepted as a CRL", bad)
		}
	}
}

func TestParseHorizon(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, " 0d ": 0, "2160h": 2160 * time.Hour, "36h30m": 36*time.Hour + 30*time.Minute} {
		if got, err := ParseHorizon(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "90", "1.5d", "-1d", "-5h", "ninety days", "40000d"} {
		if _, err := ParseHorizon(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
