package puppet

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ParseCRLs reads every CRL of a PEM file: Puppet's ca_crl.pem (and a
// host's crl.pem) holds one per CA of the chain, the intermediate's and
// the root's.
func ParseCRLs(b []byte) ([]*x509.RevocationList, error) {
	ders := pemBlocks(b, "X509 CRL")
	if len(ders) == 0 {
		return nil, errors.New("no X509 CRL PEM block")
	}
	out := make([]*x509.RevocationList, 0, len(ders))
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, err
		}
		out = append(out, crl)
	}
	return out, nil
}

// CheckCRL verifies every CRL of crlPEM against the CA certificates of
// caPEM (a host's own CA bundle): each is signed by a CA of that bundle,
// so a CRL of another CA is never installed. With oldPEM (the file it
// would replace), it refuses to go back in time: no issuer's CRL number
// may be lower than the one the host has.
func CheckCRL(crlPEM, caPEM, oldPEM []byte) error {
	crls, err := ParseCRLs(crlPEM)
	if err != nil {
		return fmt.Errorf("CRL: %w", err)
	}
	cas := pemBlocks(caPEM, "CERTIFICATE")
	if len(cas) == 0 {
		return errors.New("no CA certificate to verify the CRL against")
	}
	for _, crl := range crls {
		signed := false
		for _, der := range cas {
			ca, err := x509.ParseCertificate(der)
			if err == nil && bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return fmt.Errorf("the CRL of %q is not signed by a CA this host trusts", crl.Issuer.CommonName)
		}
	}
	if oldPEM == nil {
		return nil
	}
	old, err := ParseCRLs(oldPEM)
	if err != nil {
		return nil // an unreadable CRL is replaced
	}
	for _, o := range old {
		for _, n := range crls {
			if bytes.Equal(o.RawIssuer, n.RawIssuer) && o.Number != nil && n.Number != nil && n.Number.Cmp(o.Number) < 0 {
				return fmt.Errorf("the CRL of %q is number %s, older than the host's (%s)", n.Issuer.CommonName, n.Number, o.Number)
			}
		}
	}
	return nil
}

// ErrRevoked is a certificate listed on its CA's CRL.
var ErrRevoked = errors.New("revoked")

// Revoked says when the certificate was revoked, if a CRL of its issuer in
// crlPEM lists its serial. A CRL that cannot be read is an error, never a
// certificate that looks fine.
func Revoked(cert *x509.Certificate, crlPEM []byte) (time.Time, bool, error) {
	crls, err := ParseCRLs(crlPEM)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("CRL: %w", err)
	}
	for _, crl := range crls {
		if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return e.RevocationTime, true, nil
			}
		}
	}
	return time.Time{}, false, nil
}
