package puppet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/puppet/puppettest"
)

// testCA is puppettest's CA with the short names these tests use.
type testCA struct {
	*puppettest.CA
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA { return newNamedCA(t, "Puppet CA") }

// newNamedCA is a CA of that CN, able to sign CRLs too.
func newNamedCA(t *testing.T, cn string) *testCA {
	t.Helper()
	c := puppettest.NewCA(t, cn)
	return &testCA{CA: c, cert: c.Cert, key: c.Key, pem: c.PEM}
}

func (ca *testCA) issue(t *testing.T, cn string, dns []string, pub any) []byte {
	t.Helper()
	return ca.Issue(t, cn, dns, pub)
}

func csr(t *testing.T, key *ecdsa.PrivateKey, cn string, dns []string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func pubDER(t *testing.T, key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestExpectedNames(t *testing.T) {
	got := ExpectedNames("compile1.lab.test", []string{"puppet.lab.test", "DNS:Puppet", " compile1.lab.test", "IP:10.0.0.1", ""})
	want := "IP:10.0.0.1 compile1.lab.test puppet puppet.lab.test"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v", got)
	}
}

func TestCheckCSR(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	want := ExpectedNames("compile1.lab.test", []string{"puppet.lab.test", "puppet"})
	good := csr(t, key, "compile1.lab.test", []string{"puppet", "puppet.lab.test", "compile1.lab.test"})
	if err := CheckCSR(good, "compile1.lab.test", want, pubDER(t, key)); err != nil {
		t.Errorf("good CSR refused: %v", err)
	}
	cases := []struct {
		name string
		pem  []byte
		pub  []byte
		msg  string
	}{
		{"extra name", csr(t, key, "compile1.lab.test", []string{"puppet", "puppet.lab.test", "evil.lab.test"}), nil, "unexpected evil.lab.test"},
		{"missing name", csr(t, key, "compile1.lab.test", []string{"compile1.lab.test"}), nil, "missing puppet"},
		{"other cn", csr(t, key, "compile2.lab.test", []string{"puppet", "puppet.lab.test"}), nil, `is for "compile2.lab.test"`},
		{"other key", good, pubDER(t, other), "not the host's own"},
		{"garbage", []byte("nope"), nil, "no CERTIFICATE REQUEST"},
	}
	for _, c := range cases {
		err := CheckCSR(c.pem, "compile1.lab.test", want, c.pub)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.msg)
		}
	}
	// An agent: no alt names at all.
	if err := CheckCSR(csr(t, key, "agent1.lab.test", nil), "agent1.lab.test", ExpectedNames("agent1.lab.test", nil), nil); err != nil {
		t.Errorf("agent CSR: %v", err)
	}
}

func TestCheckCert(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	want := ExpectedNames("compile1.lab.test", []string{"puppet.lab.test"})
	cert := ca.issue(t, "compile1.lab.test", []string{"compile1.lab.test", "puppet.lab.test"}, &key.PublicKey)
	now := time.Now()
	if err := CheckCert(cert, ca.pem, "compile1.lab.test", want, pubDER(t, key), now); err != nil {
		t.Fatalf("good cert: %v", err)
	}
	if err := CheckCert(cert, other.pem, "compile1.lab.test", want, nil, now); err == nil {
		t.Error("cert of another CA accepted")
	}
	if err := CheckCert(cert, ca.pem, "compile1.lab.test", want, nil, now.Add(2*time.Hour)); err == nil {
		t.Error("expired cert accepted")
	}
	err := CheckCert(cert, ca.pem, "compile1.lab.test", ExpectedNames("compile1.lab.test", []string{"puppet.lab.test", "puppet"}), nil, now)
	if _, ok := err.(*NamesError); !ok {
		t.Errorf("names mismatch: %v", err)
	}
	// A cert without SANs (an agent): CN only.
	agent := ca.issue(t, "agent1.lab.test", nil, &key.PublicKey)
	if err := CheckCert(agent, ca.pem, "agent1.lab.test", ExpectedNames("agent1.lab.test", nil), nil, now); err != nil {
		t.Errorf("agent cert: %v", err)
	}
}
