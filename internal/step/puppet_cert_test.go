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
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
	evil   string // an extra name the "host" slips into its CSR
}

func newCertSite(t *testing.T) *certSite {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Puppet CA: ca.lab.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	caCert, _ := x509.ParseCertificate(der)
	s := &certSite{
		fakeSite: &fakeSite{hosts: map[string]*fakeConn{"ca.lab.test": newFake(), "compile1.lab.test": newFake()}},
		caKey:    key, caCert: caCert, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	ca, host := s.hosts["ca.lab.test"], s.hosts["compile1.lab.test"]
	ca.reply("config print cadir", caDir+"\n")
	host.reply("config print certname hostcert", strings.Join([]string{
		"certname = compile1.lab.test",
		"hostcert = " + sslDir + "/certs/compile1.lab.test.pem",
		"hostprivkey = " + sslDir + "/private_keys/compile1.lab.test.pem",
		"localcacert = " + sslDir + "/certs/ca.pem"}, "\n")+"\n")
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
		host.set(sslDir+"/certs/ca.pem", s.caPEM)
		ca.set(caDir+"/requests/compile1.lab.test.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
		return transport.Result{}
	})
	ca.on("ca sign --certname compile1.lab.test", func(string) transport.Result {
		b, _ := ca.Download(context.Background(), caDir+"/requests/compile1.lab.test.pem", true)
		blk, _ := pem.Decode(b)
		csr, _ := x509.ParseCertificateRequest(blk.Bytes)
		tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tpl, s.caCert, csr.PublicKey, s.caKey)
		ca.set(caDir+"/signed/compile1.lab.test.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		return transport.Result{Stdout: "Successfully signed certificate request for compile1.lab.test"}
	})
	host.on("ssl download_cert", func(string) transport.Result {
		b, _ := ca.Download(context.Background(), caDir+"/signed/compile1.lab.test.pem", true)
		host.set(sslDir+"/certs/compile1.lab.test.pem", b)
		return transport.Result{}
	})
	return s
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
	if !res.Changed || !strings.Contains(res.Msg, "signed") {
		t.Errorf("first run: %+v", res)
	}
	if got := s.hosts["compile1.lab.test"].ranMatching("submit_request"); len(got) != 1 || !strings.Contains(got[0], "--dns_alt_names puppet.lab.test,puppet,compile1") {
		t.Errorf("submit: %v", got)
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
