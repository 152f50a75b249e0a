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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/transport"
)

const (
	caDir  = "/etc/puppet/puppetserver/ca"
	sslDir = "/var/lib/puppet/ssl"
)

// certSite is a CA host and a compiler whose puppet/puppetserver commands
// behave like Puppet's: submit_request writes a key and a CSR to the CA,
// `ca sign` issues the certificate, download_cert fetches it.
type certSite struct {
	*fakeSite
	caKey   *ecdsa.PrivateKey
	caCert  *x509.Certificate
	caPEM   []byte
	evil    string // an extra name the "host" slips into its CSR
	revoked []x509.RevocationListEntry
	serial  int64 // the last serial signed
}

func newCertSite(t *testing.T) *certSite {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Puppet CA: ca.lab.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte{1, 2, 3, 4}}
	der, _ := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	caCert, _ := x509.ParseCertificate(der)
	s := &certSite{
		fakeSite: &fakeSite{hosts: map[string]*fakeConn{"ca.lab.test": newFake(t), "compile1.lab.test": newFake(t)}},
		caKey:    key, caCert: caCert, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	ca, host := s.hosts["ca.lab.test"], s.hosts["compile1.lab.test"]
	ca.reply("config print cadir", caDir+"\n")
	ca.set(caDir+"/ca_crt.pem", s.caPEM)
	host.reply("config print certname hostcert", strings.Join([]string{
		"certname = compile1.lab.test",
		"hostcert = " + sslDir + "/certs/compile1.lab.test.pem",
		"hostprivkey = " + sslDir + "/private_keys/compile1.lab.test.pem",
		"localcacert = " + sslDir + "/certs/ca.pem",
		"hostcrl = " + sslDir + "/crl.pem"}, "\n")+"\n")
	host.reply("install -d -m 0755 "+sslDir+"/certs", "") // trustCA's directory for the CA bundle
	// retire's backup of the certificate and key: it prints where they went
	host.reply("cp -p \"$f\"", "/var/lib/troupe/backups/ssl-compile1.lab.test-20250101T000000Z\n")
	altRe := regexp.MustCompile(`--dns_alt_names (\S+)`)
	var hostKey *ecdsa.PrivateKey
	var pubPEM string // what `openssl pkey -pubout` prints once the host has a key
	host.on("openssl pkey -pubout", func(string) transport.Result { return transport.Result{Stdout: pubPEM} })
	host.on("ssl submit_request", func(cmd string) transport.Result {
		hostKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		names := []string{"compile1.lab.test"}
		if m := altRe.FindStringSubmatch(cmd); m != nil {
			names = append(names, strings.Split(strings.Trim(m[1], "'"), ",")...)
		}
		if s.evil != "" {
			names = append(names, s.evil)
		}
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "compile1.lab.test"}, DNSNames: names}, hostKey)
		pub, _ := x509.MarshalPKIXPublicKey(&hostKey.PublicKey)
		pubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
		ca.set(caDir+"/requests/compile1.lab.test.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
		return transport.Result{}
	})
	ca.on("ca sign --certname compile1.lab.test", func(string) transport.Result {
		b, _ := ca.Download(context.Background(), caDir+"/requests/compile1.lab.test.pem", true)
		blk, _ := pem.Decode(b)
		csr, _ := x509.ParseCertificateRequest(blk.Bytes)
		s.serial++
		tpl := &x509.Certificate{SerialNumber: big.NewInt(s.serial), Subject: csr.Subject, DNSNames: csr.DNSNames,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tpl, s.caCert, csr.PublicKey, s.caKey)
		ca.set(caDir+"/signed/compile1.lab.test.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		ca.remove(caDir + "/requests/compile1.lab.test.pem") // as the CA does
		return transport.Result{Stdout: "Successfully signed certificate request for compile1.lab.test"}
	})
	ca.on("ca clean --certname compile1.lab.test", func(string) transport.Result {
		b, _ := ca.Download(context.Background(), caDir+"/signed/compile1.lab.test.pem", true)
		if c, err := x509.ParseCertificate(mustPEM(t, b)); err == nil {
			s.revoke(c.SerialNumber)
		}
		ca.remove(caDir + "/signed/compile1.lab.test.pem")
		return transport.Result{}
	})
	host.on("ssl clean --certname compile1.lab.test", func(string) transport.Result {
		host.remove(sslDir + "/certs/compile1.lab.test.pem")
		pubPEM = ""
		return transport.Result{}
	})
	host.on("ssl download_cert", func(string) transport.Result {
		b, _ := ca.Download(context.Background(), caDir+"/signed/compile1.lab.test.pem", true)
		host.set(sslDir+"/certs/compile1.lab.test.pem", b)
		return transport.Result{}
	})
	return s
}

// revoke adds a serial to the CA's CRL (ca_crl.pem), as `ca clean` and
// `ca revoke` do.
func (s *certSite) revoke(serial *big.Int) {
	s.revoked = append(s.revoked, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: time.Now()})
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(int64(len(s.revoked))),
		ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: s.revoked}, s.caCert, s.caKey)
	if err != nil {
		panic(err)
	}
	s.hosts["ca.lab.test"].set(caDir+"/ca_crl.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func compilerCert() *PuppetCert {
	return &PuppetCert{Certname: "{{ .host.name }}", DNSAltNames: []string{"puppet.lab.test,puppet", "{{ .host.short }}"}, CA: "ca.lab.test"}
}

func TestPuppetCertSignsThenKeeps(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	res, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil {
		t.Fatal(err)
	}
	// The host had no CA certificate: troupe gave it the CA's, over SSH.
	if got := s.hosts["compile1.lab.test"].file(sslDir + "/certs/ca.pem"); string(got) != string(s.caPEM) {
		t.Error("the host's CA certificate is not the CA's bundle")
	}
	if !res.Changed || !strings.Contains(res.Msg, "signed") {
		t.Errorf("first run: %+v", res)
	}
	if got := s.hosts["compile1.lab.test"].ranMatching("submit_request"); len(got) != 1 || !strings.Contains(got[0], "--dns_alt_names puppet.lab.test,puppet,compile1") {
		t.Errorf("submit: %v", got)
	}
	// the request and the download go to the CA host that signs, by its
	// own name, not to ca_server (with ca_route sni, the load balancer's)
	for _, c := range []string{"submit_request", "download_cert"} {
		if got := s.hosts["compile1.lab.test"].ranMatching(c); len(got) != 1 || !strings.Contains(got[0], "--ca_server ca.lab.test") {
			t.Errorf("%s not sent to the CA host: %v", c, got)
		}
	}
	res, err = compilerCert().Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Changed {
		t.Errorf("second run: %+v %v", res, err)
	}
	if n := len(s.hosts["ca.lab.test"].ranMatching("ca sign")); n != 1 {
		t.Errorf("signed %d times", n)
	}
	// Another set of names now: refused, never silently reissued.
	other := compilerCert()
	other.DNSAltNames = []string{"puppet.lab.test"}
	_, err = other.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "unexpected compile1") || !strings.Contains(err.Error(), "reissue") {
		t.Errorf("names changed: %v", err)
	}
}

func TestPuppetCertRefusesUnexpectedNames(t *testing.T) {
	s := newCertSite(t)
	s.evil = "www.bank.test"
	_, err := compilerCert().Run(context.Background(), s.exec(t, "compile1.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "refusing to sign") || !strings.Contains(err.Error(), "unexpected www.bank.test") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.hosts["ca.lab.test"].ranMatching("ca sign")); n != 0 {
		t.Errorf("signed anyway (%d)", n)
	}
}

func TestPuppetCertResumesPendingRequest(t *testing.T) {
	s := newCertSite(t)
	x := s.exec(t, "compile1.lab.test")
	// An earlier run submitted, then stopped: the CSR waits on the CA.
	s.hosts["compile1.lab.test"].Run(context.Background(), transport.Cmd{Command: "puppet ssl submit_request --certname compile1.lab.test --dns_alt_names puppet.lab.test,puppet,compile1"})
	if _, err := compilerCert().Run(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if n := len(s.hosts["compile1.lab.test"].ranMatching("submit_request")); n != 1 {
		t.Errorf("submitted %d times", n)
	}
}

func TestPuppetCertNoop(t *testing.T) {
	s := newCertSite(t)
	s.noop = true
	res, err := compilerCert().Run(context.Background(), s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	for _, h := range s.hosts {
		if c := h.ranMatching("ssl submit"); len(c) > 0 {
			t.Errorf("noop ran %v", c)
		}
	}
}

func TestPuppetCertReissuesWithNewNames(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	host, ca := s.hosts["compile1.lab.test"], s.hosts["ca.lab.test"]
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	old := host.file(sslDir + "/certs/compile1.lab.test.pem")

	wider := compilerCert()
	wider.DNSAltNames = append(wider.DNSAltNames, "puppet-alias.lab.test")
	check := *wider
	check.Check = true
	res, err := check.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Changed || res.Data.(map[string]any)["state"] != "names" || !strings.Contains(res.Msg, "missing puppet-alias.lab.test") {
		t.Fatalf("check before: %+v %v", res, err)
	}
	if !check.ReadOnly() || wider.ReadOnly() {
		t.Error("a check is read-only, a reissue is not")
	}
	if peers, _ := check.Peers(s.exec(t, "compile1.lab.test").Scope()); len(peers) != 0 {
		t.Errorf("a check needs no CA: peers %v", peers)
	}

	wider.Reissue = true
	res, err = wider.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed {
		t.Fatalf("reissue: %+v %v", res, err)
	}
	cert, _ := host.Download(ctx, sslDir+"/certs/compile1.lab.test.pem", true)
	if string(cert) == string(old) || !strings.Contains(string(cert), "CERTIFICATE") {
		t.Fatal("certificate not replaced")
	}
	c, _ := x509.ParseCertificate(mustPEM(t, cert))
	if !strings.Contains(strings.Join(c.DNSNames, ","), "puppet-alias.lab.test") {
		t.Errorf("new certificate names %v", c.DNSNames)
	}
	// The order that keeps something to go back to: backup, then the CA's
	// clean (revokes the old certificate), then the host's, then a request.
	var order []string
	for _, cmd := range host.ran() {
		for _, w := range []string{"cmp -s", "ssl clean", "submit_request"} {
			if strings.Contains(cmd, w) {
				order = append(order, w)
			}
		}
	}
	if strings.Join(order, ",") != "submit_request,cmp -s,ssl clean,submit_request" {
		t.Errorf("host commands in order: %v", order)
	}
	if n := len(ca.ranMatching("ca clean")); n != 1 {
		t.Errorf("cleaned on the CA %d times", n)
	}
	res, err = check.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || res.Data.(map[string]any)["state"] != "ok" {
		t.Errorf("check after: %+v %v", res, err)
	}
	if res, err := wider.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Changed {
		t.Errorf("second reissue run changed: %+v %v", res, err)
	}

	// Interrupted after the CA's clean: the next run does the rest.
	narrower := compilerCert()
	narrower.Reissue = true
	ca.remove(caDir + "/signed/compile1.lab.test.pem")
	if _, err := narrower.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatalf("resume after the CA's clean: %v", err)
	}
	if n := len(ca.ranMatching("ca clean")); n != 1 {
		t.Errorf("cleaned on the CA %d times (nothing left to clean the second time)", n)
	}
}

func TestPuppetCertNeverReissuesTheCAHost(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	p := compilerCert()
	p.DNSAltNames, p.Reissue, p.CA = nil, true, "compile1.lab.test"
	s.hosts["compile1.lab.test"].reply("config print cadir", caDir+"\n") // the CA named is compile1
	_, err := p.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "CA host") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.hosts["compile1.lab.test"].ranMatching("ssl clean")); n != 0 {
		t.Errorf("cleaned anyway")
	}
}

func mustPEM(t *testing.T, b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	return blk.Bytes
}

// A certificate the CA revoked is not OK: bootstrap's mode refuses with the
// way out, reissue replaces it, a check on the host's copy of the CRL says
// revoked.
func TestPuppetCertRevoked(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	host := s.hosts["compile1.lab.test"]
	if _, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(mustPEM(t, host.file(sslDir+"/certs/compile1.lab.test.pem")))
	s.revoke(c.SerialNumber)

	_, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), "reissue") {
		t.Fatalf("revoked certificate in bootstrap mode: %v", err)
	}
	check := compilerCert()
	check.Check = true
	if res, err := check.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Data.(map[string]any)["state"] != "ok" {
		t.Errorf("check with the host's old CRL (none): %+v %v", res, err)
	}
	host.set(sslDir+"/crl.pem", s.hosts["ca.lab.test"].file(caDir+"/ca_crl.pem"))
	if res, err := check.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Data.(map[string]any)["state"] != "revoked" {
		t.Errorf("check with the CA's CRL on the host: %+v %v", res, err)
	}
	re := compilerCert()
	re.Reissue = true
	if res, err := re.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || !res.Changed {
		t.Fatalf("reissue of a revoked certificate: %+v %v", res, err)
	}
	if res, err := compilerCert().Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Changed {
		t.Errorf("after the reissue: %+v %v", res, err)
	}
}

// The CA's cadir is read once a run (Exec.Memo), and again in the next run:
// a long-lived process (webhook serve) outlives a ca-rebuild.
func TestPuppetCertReadsTheCadirOncePerRun(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	ca := s.hosts["ca.lab.test"]
	run := func(memo *Memo, times int) {
		for range times {
			x := s.exec(t, "compile1.lab.test")
			x.Memo = memo
			if _, err := compilerCert().Run(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(&Memo{}, 3)
	if n := len(ca.ranMatching("config print cadir")); n != 1 {
		t.Errorf("one run, three certificate steps: the cadir read %d times, want 1", n)
	}
	run(&Memo{}, 1)
	if n := len(ca.ranMatching("config print cadir")); n != 2 {
		t.Errorf("a second run: the cadir read %d times in all, want 2", n)
	}
}
