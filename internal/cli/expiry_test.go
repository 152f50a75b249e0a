package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
)

// TestCertExpiryPlan runs the shipped cert-expiry plan with the real binary
// against the in-process SSH server (commands through /bin/sh, files over
// SFTP): a CA directory on disk, `puppet` a script that prints its path.
// The report is printed and exits 0; with -p fail=true the expired agent
// certificate makes it exit 1.
func TestCertExpiryPlan(t *testing.T) {
	dir := t.TempDir()
	cadir := filepath.Join(dir, "ca")
	now, day := time.Now(), 24*time.Hour
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Puppet CA: ca.lab.test"},
		NotBefore: now.Add(-day), NotAfter: now.Add(1825*day + time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	write(t, filepath.Join(cadir, "ca_crt.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3), ThisUpdate: now.Add(-day), NextUpdate: now.Add(1800*day + time.Hour)}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(cadir, "ca_crl.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})))
	for serial, h := range map[int64]struct {
		name string
		in   time.Duration
	}{2: {"compile1.lab.test", 1700*day + time.Hour}, 3: {"agent1.lab.test", -5*day + time.Hour}} {
		tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: h.name}, NotBefore: now.Add(-400 * day), NotAfter: now.Add(h.in)}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(cadir, "signed", h.name+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	}
	bin := filepath.Join(dir, "bin")
	write(t, filepath.Join(bin, "puppet"), "#!/bin/sh\necho "+cadir+"\n")
	if err := os.Chmod(filepath.Join(bin, "puppet"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The in-process server runs commands with this process's environment.
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	srv := sshtest.StartServer(t)
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf(`version: 1
config:
  ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s}
groups:
  ca:
    targets: [{name: ca.lab.test, address: 127.0.0.1}]
`, srv.Config.User, srv.Port, srv.KeyFile, srv.KnownHosts))
	env := []string{"HOME=" + dir}
	common := []string{"--content", filepath.Join(dir, "none"), "--state-dir", filepath.Join(dir, "state"), "--color", "never", "run", "cert-expiry", "-i", inv}

	r := troupe(t, env, common...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"     -5 d  cert  agent1.lab.test  serial 0x0003  EXPIRED",
		"   1700 d  cert  compile1.lab.test  serial 0x0002",
		"   1800 d  crl   Puppet CA: ca.lab.test  number 0x0003 in ca_crl.pem",
		"   1825 d  ca    Puppet CA: ca.lab.test  serial 0x0001",
		"3 certificates, 1 CRL; soonest agent1.lab.test (cert) -5 d; 0 inside 90d, 1 expired",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("missing %q in:\n%s", want, r.stdout)
		}
	}
	if i, j := strings.Index(r.stdout, "agent1.lab.test  serial"), strings.Index(r.stdout, "compile1.lab.test  serial"); i < 0 || j < i {
		t.Errorf("not soonest first:\n%s", r.stdout)
	}
	if r := troupe(t, env, append(common, "-p", "fail=true")...); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "(fail_within)") {
		t.Errorf("fail=true: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := troupe(t, env, append(common, "--noop", "-p", "horizon=2000d")...); r.code != 0 || !strings.Contains(r.stdout, "3 inside 2000d, 1 expired") {
		t.Errorf("--noop, horizon=2000d: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
