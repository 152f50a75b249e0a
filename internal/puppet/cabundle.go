package puppet

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ParseBundle reads every certificate of a CA bundle (ca_crt.pem: Puppet 7+
// writes the intermediate first, then the root).
func ParseBundle(b []byte) ([]*x509.Certificate, error) {
	ders := pemBlocks(b, "CERTIFICATE")
	if len(ders) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// CheckRenewedBundle accepts a CA bundle that renews old: the same CAs in
// the same order (subject, public key, subject key identifier and serial, so
// every certificate the CA ever signed still chains, and no agent needs a
// new certificate), each valid at least as long as before, every one a CA,
// and the chain sound (each signed by the next, the last by itself).
func CheckRenewedBundle(newPEM, oldPEM []byte) error {
	nb, err := ParseBundle(newPEM)
	if err != nil {
		return fmt.Errorf("new CA bundle: %w", err)
	}
	ob, err := ParseBundle(oldPEM)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	if len(nb) != len(ob) {
		return fmt.Errorf("new CA bundle has %d certificates, the CA's %d", len(nb), len(ob))
	}
	for i, n := range nb {
		o := ob[i]
		switch {
		case !bytes.Equal(n.RawSubject, o.RawSubject):
			return fmt.Errorf("certificate %d is for %q, not %q", i+1, n.Subject, o.Subject)
		case !bytes.Equal(n.RawSubjectPublicKeyInfo, o.RawSubjectPublicKeyInfo):
			return fmt.Errorf("%q: another key", n.Subject.CommonName)
		case !bytes.Equal(n.SubjectKeyId, o.SubjectKeyId):
			return fmt.Errorf("%q: subject key identifier %x, was %x (certificates it signed would no longer chain)", n.Subject.CommonName, n.SubjectKeyId, o.SubjectKeyId)
		case n.SerialNumber.Cmp(o.SerialNumber) != 0:
			return fmt.Errorf("%q: serial %x, was %x (the certificates it signed name its serial)", n.Subject.CommonName, n.SerialNumber, o.SerialNumber)
		case !n.IsCA:
			return fmt.Errorf("%q is not a CA certificate", n.Subject.CommonName)
		case n.NotAfter.Before(o.NotAfter):
			return fmt.Errorf("%q would end %s, before %s", n.Subject.CommonName, n.NotAfter.UTC().Format(time.DateOnly), o.NotAfter.UTC().Format(time.DateOnly))
		}
		issuer := n
		if i+1 < len(nb) {
			issuer = nb[i+1]
		}
		if err := n.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%q is not signed by %q: %w", n.Subject.CommonName, issuer.Subject.CommonName, err)
		}
	}
	return nil
}

// SameCA says whether bundle b holds the same CAs as bundle a (subjects and
// keys): a host's CA bundle may be replaced by b without a new certificate.
func SameCA(a, b []byte) error {
	ab, err := ParseBundle(a)
	if err != nil {
		return err
	}
	bb, err := ParseBundle(b)
	if err != nil {
		return err
	}
	for _, o := range ab {
		found := false
		for _, n := range bb {
			if bytes.Equal(n.RawSubject, o.RawSubject) && bytes.Equal(n.RawSubjectPublicKeyInfo, o.RawSubjectPublicKeyInfo) {
				found = true
				if n.NotAfter.Before(o.NotAfter) {
					return fmt.Errorf("%q would end %s, before the host's copy (%s)", n.Subject.CommonName,
						n.NotAfter.UTC().Format(time.DateOnly), o.NotAfter.UTC().Format(time.DateOnly))
				}
			}
		}
		if !found {
			return fmt.Errorf("the host trusts %q, which the CA's bundle does not hold with the same key: another CA", o.Subject.CommonName)
		}
	}
	return nil
}
