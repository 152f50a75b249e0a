package step

import (
	"context"
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

	"github.com/goccy/go-yaml/parser"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

const day = 24 * time.Hour

// expiryCA is a CA directory as `puppetserver ca setup` and signing leave
// it, relative file name → content, with not-afters relative to now.
type expiryCA struct {
	files map[string][]byte
	dates map[string]time.Time // item name → not-after as encoded (whole seconds)
}

func newExpiryCA(t *testing.T, now time.Time) *expiryCA {
	t.Helper()
	e := &expiryCA{files: map[string][]byte{}, dates: map[string]time.Time{}}
	mk := func(cn string, serial int64, in time.Duration, isCA bool, parent *x509.Certificate, pkey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-400 * day), NotAfter: now.Add(in), IsCA: isCA, BasicConstraintsValid: isCA}
		if isCA {
			tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
		if parent == nil {
			parent, pkey = tpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, pkey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		e.dates[cn] = c.NotAfter
		return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	crl := func(issuer *x509.Certificate, key *ecdsa.PrivateKey, number int64, in time.Duration) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number),
			ThisUpdate: now.Add(-day), NextUpdate: now.Add(in)}, issuer, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	ca, caKey, caPEM := mk("Puppet CA: ca.lab.test", 1, 1825*day+time.Hour, true, nil, nil)
	e.files["ca_crt.pem"] = caPEM
	e.files["ca_crl.pem"] = crl(ca, caKey, 4, 60*day+time.Hour) // inside 90 days
	e.files["infra_crl.pem"] = crl(ca, caKey, 1, 1800*day+time.Hour)
	e.dates["crl"] = now.Add(60*day + time.Hour).Truncate(time.Second)
	e.dates["infra"] = now.Add(1800*day + time.Hour).Truncate(time.Second)
	for i, h := range []struct {
		name string
		in   time.Duration
	}{
		{"ca.lab.test", 1825*day + time.Hour},
		{"compile1.lab.test", 1700*day + time.Hour},
		{"agent1.lab.test", 10*day + time.Hour}, // inside
		{"agent2.lab.test", -2*day + time.Hour}, // expired
		{"agent3.lab.test", 365*day + time.Hour},
	} {
		_, _, p := mk(h.name, int64(2+i), h.in, false, ca, caKey)
		e.files["signed/"+h.name+".pem"] = p
	}
	return e
}

// expiryLines are the host lines of the events, in order.
func expiryLines(events []report.Event) []string {
	var out []string
	for _, e := range events {
		if e.Kind == report.HostLine {
			out = append(out, e.Text)
		}
	}
	return out
}

func (e *expiryCA) wantLines() []string {
	d := func(n string) string { return e.dates[n].UTC().Format(time.DateOnly) }
	return []string{
		d("agent2.lab.test") + "     -2 d  cert  agent2.lab.test  serial 0x0005  EXPIRED",
		d("agent1.lab.test") + "     10 d  cert  agent1.lab.test  serial 0x0004  inside 90d",
		d("crl") + "     60 d  crl   Puppet CA: ca.lab.test  number 0x0004 in ca_crl.pem  inside 90d",
		d("agent3.lab.test") + "    365 d  cert  agent3.lab.test  serial 0x0006",
		d("compile1.lab.test") + "   1700 d  cert  compile1.lab.test  serial 0x0003",
		d("infra") + "   1800 d  crl   Puppet CA: ca.lab.test  number 0x0001 in infra_crl.pem",
		d("ca.lab.test") + "   1825 d  ca    Puppet CA: ca.lab.test  serial 0x0001",
		d("ca.lab.test") + "   1825 d  cert  ca.lab.test  serial 0x0002",
	}
}

func expirySite(t *testing.T, e *expiryCA) *fakeSite {
	s := &fakeSite{hosts: map[string]*fakeConn{"ca.lab.test": newFake(t)}}
	ca := s.hosts["ca.lab.test"]
	ca.reply("config print cadir --section server", caDir+"\n")
	var names []string
	for f, b := range e.files {
		ca.set(caDir+"/"+f, b)
		if n, ok := strings.CutPrefix(f, "signed/"); ok {
			names = append(names, n)
		}
	}
	ca.reply("ls -1 -- "+caDir+"/signed", strings.Join(names, "\n")+"\n")
	return s
}

func TestPuppetCertExpiry(t *testing.T) {
	e := newExpiryCA(t, time.Now())
	s := expirySite(t, e)
	res, err := (&PuppetCertExpiry{}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err != nil || res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	want := e.wantLines()
	if got := expiryLines(s.events); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if want := "6 certificates, 2 CRLs; soonest agent2.lab.test (cert) -2 d; 2 inside 90d, 1 expired"; res.Msg != want {
		t.Errorf("msg %q, want %q", res.Msg, want)
	}
	d := res.Data.(map[string]any)
	items := d["items"].([]any)
	if d["inside"] != 2 || d["expired"] != 1 || d["soonest"] != "agent2.lab.test" || len(items) != 8 {
		t.Errorf("data %v", d)
	}
	first := items[0].(map[string]any)
	if first["state"] != "expired" || first["days_left"] != -2 || first["kind"] != "cert" || first["serial"] != "0x0005" ||
		first["not_after"] != e.dates["agent2.lab.test"].UTC().Format(time.RFC3339) {
		t.Errorf("first item %v", first)
	}
	// One settings read and one listing; the files are downloads, not commands.
	if ran := s.hosts["ca.lab.test"].ran(); len(ran) != 2 {
		t.Errorf("commands run: %q", ran)
	}

	// fail_within fails on the same site; a template gives it from a param.
	for fw, fails := range map[string]bool{"true": true, "false": false, "{{ .params.fail }}": true, "": false} {
		x := s.exec(t, "ca.lab.test")
		x.Data["params"] = map[string]any{"fail": true}
		res, err := (&PuppetCertExpiry{FailWithin: fw}).Run(context.Background(), x)
		if (err != nil) != fails {
			t.Errorf("fail_within %q: err %v", fw, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "2 inside 90d, 1 expired") || res.Data == nil) {
			t.Errorf("fail_within %q: %v, data %v", fw, err, res.Data)
		}
	}
	// A horizon of 0 days: only the expired one; fail_within still fails.
	s.events = nil
	res, err = (&PuppetCertExpiry{Horizon: "0d", FailWithin: "true"}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err == nil || res.Data.(map[string]any)["inside"] != 0 || res.Data.(map[string]any)["expired"] != 1 {
		t.Errorf("horizon 0d: %+v %v", res, err)
	}
	// A horizon of 9 days and nothing expired: passes with fail_within.
	s.hosts["ca.lab.test"].remove(caDir + "/signed/agent2.lab.test.pem") // cleaned after the listing: skipped
	res, err = (&PuppetCertExpiry{Horizon: "216h", FailWithin: "true"}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err != nil || res.Data.(map[string]any)["soonest"] != "agent1.lab.test" {
		t.Errorf("horizon 216h: %+v %v", res, err)
	}
}

func TestPuppetCertExpiryProblems(t *testing.T) {
	e := newExpiryCA(t, time.Now())
	// A signed file that is not a certificate: the report is still made,
	// and the step fails naming the file.
	e.files["signed/broken.lab.test.pem"] = []byte("not a certificate\n")
	s := expirySite(t, e)
	res, err := (&PuppetCertExpiry{}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "signed/broken.lab.test.pem: no CERTIFICATE PEM block") {
		t.Errorf("broken file: %v", err)
	}
	if res.Data == nil || len(res.Data.(map[string]any)["items"].([]any)) != 8 || len(expiryLines(s.events)) != 9 {
		t.Errorf("broken file: report %+v, lines %q", res, expiryLines(s.events))
	}
	// Not a CA: no ca_crt.pem.
	s.hosts["ca.lab.test"].remove(caDir + "/ca_crt.pem")
	if _, err := (&PuppetCertExpiry{}).Run(context.Background(), s.exec(t, "ca.lab.test")); err == nil || !strings.Contains(err.Error(), "is this the CA host?") {
		t.Errorf("no ca_crt.pem: %v", err)
	}
	// A bad horizon or fail_within rendered from a param.
	x := s.exec(t, "ca.lab.test")
	x.Data["params"] = map[string]any{"h": "ninety", "f": "maybe"}
	if _, err := (&PuppetCertExpiry{Horizon: "{{ .params.h }}"}).Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), `horizon "ninety"`) {
		t.Errorf("bad horizon: %v", err)
	}
	if _, err := (&PuppetCertExpiry{FailWithin: "{{ .params.f }}"}).Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), `fail_within "maybe"`) {
		t.Errorf("bad fail_within: %v", err)
	}
}

func TestPuppetCertExpiryDecode(t *testing.T) {
	for body, ok := range map[string]bool{
		"{}":                                true,
		"{horizon: 90d, fail_within: true}": true,
		"{horizon: 2160h}":                  true,
		`{horizon: "{{ .params.horizon }}", fail_within: "{{ .params.fail }}"}`: true,
		"{horizon: ninety}":           false,
		"{horizon: -3d}":              false,
		"{fail_within: maybe}":        false,
		"{horizon: 90d, certname: x}": false,
	} {
		f, err := parser.ParseBytes([]byte(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := (Registry{}).Decode("puppet_cert_expiry", f.Docs[0].Body)
		if (err == nil) != ok {
			t.Errorf("%s: %v", body, err)
		}
		if err == nil && !a.(ReadOnly).ReadOnly() {
			t.Errorf("%s: not read-only", body)
		}
	}
}

// TestPuppetCertExpirySSH runs the step over a real SSH connection (the
// in-process server, logged in as this user: commands through /bin/sh,
// downloads over SFTP) against a CA directory on disk, with a `puppet` that
// answers config print.
func TestPuppetCertExpirySSH(t *testing.T) {
	sshtest.Hermetic(t)
	srv := sshtest.StartServer(t)
	expiryOverSSH(t, srv.Config, false)
}

// TestPuppetCertExpiryOpenSSH is the same against Debian's sshd, logged in
// as a user that is not root, with sudo: the CA directory is root's alone
// (0700), so the listing and every download must go through sudo.
func TestPuppetCertExpiryOpenSSH(t *testing.T) {
	sshtest.Hermetic(t)
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	expiryOverSSH(t, o.User, true)
}

func expiryOverSSH(t *testing.T, cfg transport.Config, sudo bool) {
	conn, err := transport.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir := t.TempDir()
	cadir := filepath.Join(dir, "ca dir") // a space: the listing must quote it
	e := newExpiryCA(t, time.Now())
	for f, b := range e.files {
		p := filepath.Join(cadir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fakePuppet := filepath.Join(dir, "puppet")
	script := fmt.Sprintf("#!/bin/sh\n[ \"$*\" = 'config print cadir --section server' ] || exit 3\necho '%s'\n", cadir)
	if err := os.WriteFile(fakePuppet, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var events []report.Event
	x := &Exec{Host: &inventory.Host{Name: "ca.lab.test"}, Conn: conn, Sudo: sudo, Data: map[string]any{},
		Flavor: &puppet.Flavor{Bin: puppet.Binaries{Puppet: fakePuppet}},
		Emit:   func(ev report.Event) { events = append(events, ev) }}
	res, err := (&PuppetCertExpiry{Horizon: "90d"}).Run(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := expiryLines(events), e.wantLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := res.Data.(map[string]any); d["inside"] != 2 || d["expired"] != 1 {
		t.Errorf("data %v", d)
	}
	if _, err := (&PuppetCertExpiry{FailWithin: "true"}).Run(context.Background(), x); err == nil {
		t.Error("fail_within passed with an expired certificate")
	}
}
