package step

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestPuppetCRL(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	host, ca := s.hosts["compile1.lab.test"], s.hosts["ca.lab.test"]
	host.reply("config print hostcrl localcacert", "hostcrl = "+sslDir+"/crl.pem\nlocalcacert = "+sslDir+"/certs/ca.pem\n")
	host.set(sslDir+"/certs/ca.pem", s.caPEM)
	s.revoke(big.NewInt(7))
	s.revoke(big.NewInt(8))
	push := &PuppetCRL{CA: "ca.lab.test", Owner: "puppet"}
	if peers, _ := push.Peers(s.exec(t, "compile1.lab.test").Scope()); len(peers) != 1 || peers[0] != "ca.lab.test" {
		t.Errorf("peers %v", peers)
	}
	res, err := push.Run(ctx, s.exec(t, "compile1.lab.test"))
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "2 revoked") {
		t.Fatalf("first push: %+v %v", res, err)
	}
	if string(host.file(sslDir+"/crl.pem")) != string(ca.file(caDir+"/ca_crl.pem")) {
		t.Error("the host's CRL is not the CA's")
	}
	// Same file: nothing written (the fake's stat says 644 root root, so
	// ask for no owner here).
	push.Owner = ""
	if res, err := push.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Changed {
		t.Errorf("second push: %+v %v", res, err)
	}
	// The CA's CRL older than the host's: refused, the host's kept.
	newer := host.file(sslDir + "/crl.pem")
	s.revoked = s.revoked[:0]
	s.revoke(big.NewInt(9)) // number 1 again
	if _, err := push.Run(ctx, s.exec(t, "compile1.lab.test")); err == nil || !strings.Contains(err.Error(), "older") {
		t.Errorf("older CRL: %v", err)
	}
	if string(host.file(sslDir+"/crl.pem")) != string(newer) {
		t.Error("the host's newer CRL was replaced")
	}
	// A CRL of another CA: refused.
	other := newCertSite(t)
	host.set(sslDir+"/certs/ca.pem", other.caPEM)
	host.remove(sslDir + "/crl.pem")
	if _, err := push.Run(ctx, s.exec(t, "compile1.lab.test")); err == nil || !strings.Contains(err.Error(), "not signed by a CA this host trusts") {
		t.Errorf("another CA's CRL: %v", err)
	}
}

func TestPuppetCABundle(t *testing.T) {
	s := newCertSite(t)
	ctx := context.Background()
	host, ca := s.hosts["compile1.lab.test"], s.hosts["ca.lab.test"]
	host.reply("config print localcacert", sslDir+"/certs/ca.pem\n")
	host.set(sslDir+"/certs/ca.pem", s.caPEM)
	ca.set(caDir+"/ca_crt.pem", s.caPEM)
	check := &PuppetCABundle{CA: "ca.lab.test", Check: true}
	if res, err := check.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Data.(map[string]any)["state"] != "same" {
		t.Fatalf("same bundle: %+v %v", res, err)
	}
	// The CA's bundle renewed: same subject and key, later end.
	tpl := *s.caCert
	tpl.NotAfter = tpl.NotAfter.Add(24 * time.Hour)
	der, _ := x509.CreateCertificate(rand.Reader, &tpl, &tpl, &s.caKey.PublicKey, s.caKey)
	renewed := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca.set(caDir+"/ca_crt.pem", renewed)
	if res, err := check.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || res.Data.(map[string]any)["state"] != "differs" || res.Changed {
		t.Fatalf("check of a renewed bundle: %+v %v", res, err)
	}
	put := &PuppetCABundle{CA: "ca.lab.test"}
	if res, err := put.Run(ctx, s.exec(t, "compile1.lab.test")); err != nil || !res.Changed {
		t.Fatalf("renewed bundle: %+v %v", res, err)
	}
	if string(host.file(sslDir+"/certs/ca.pem")) != string(renewed) {
		t.Error("the host's bundle is not the renewed one")
	}
	// Another CA's bundle: refused.
	ca.set(caDir+"/ca_crt.pem", newCertSite(t).caPEM)
	if _, err := put.Run(ctx, s.exec(t, "compile1.lab.test")); err == nil || !strings.Contains(err.Error(), "another CA") {
		t.Errorf("another CA's bundle: %v", err)
	}
}

// A renewal whose validity would still be inside the renewal window is
// refused before anything runs: every later run would renew again.
func TestPuppetCARenewRefusesDaysInsideWithin(t *testing.T) {
	s := newCertSite(t)
	_, err := (&PuppetCARenew{Within: "730d", Days: "365"}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "not longer than within") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.hosts["ca.lab.test"].ran()); n != 0 {
		t.Errorf("ran %d commands first", n)
	}
	// A check only reports: it takes no days (plan ca-renew's "due" step).
	_, err = (&PuppetCARenew{Within: "730d", Days: "365", Check: true}).Run(context.Background(), s.exec(t, "ca.lab.test"))
	if err != nil && strings.Contains(err.Error(), "not longer than within") {
		t.Errorf("a check refused for its days: %v", err)
	}
}
