package puppet

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Names is a certificate's identity as troupe compares it: the subject CN
// and every DNS and IP subject alternative name ("IP:" prefixed), sorted and
// without duplicates. Puppet puts the certname into the SANs itself when
// dns_alt_names is set, so the CN is always part of the set.
func Names(cn string, dns []string, ips []net.IP) []string {
	set := []string{strings.ToLower(cn)}
	for _, d := range dns {
		set = append(set, strings.ToLower(d))
	}
	for _, ip := range ips {
		set = append(set, "IP:"+ip.String())
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// ExpectedNames is the set a certname with these dns_alt_names must carry
// (entries may be written "DNS:x" or "IP:x", as puppet.conf allows).
func ExpectedNames(certname string, altNames []string) []string {
	var dns []string
	var ips []net.IP
	for _, a := range altNames {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.HasPrefix(a, "IP:"):
			ips = append(ips, net.ParseIP(strings.TrimPrefix(a, "IP:")))
		default:
			dns = append(dns, strings.TrimPrefix(a, "DNS:"))
		}
	}
	return Names(certname, dns, ips)
}

// DiffNames says how got differs from want ("" when equal).
func DiffNames(got, want []string) string {
	var extra, missing []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, "unexpected "+strings.Join(extra, ", "))
	}
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	return strings.Join(parts, "; ")
}

// ParseCert reads the first certificate of a PEM file.
func ParseCert(b []byte) (*x509.Certificate, error) {
	der, err := pemBlock(b, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// ParseCSR reads a PEM certificate request.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	der, err := pemBlock(b, "CERTIFICATE REQUEST")
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return csr, csr.CheckSignature()
}

// ParsePublicKey reads a PEM public key (Puppet's public_keys/NAME.pem) as DER.
func ParsePublicKey(b []byte) ([]byte, error) { return pemBlock(b, "PUBLIC KEY") }

func pemBlock(b []byte, typ string) ([]byte, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("no %s PEM block", typ)
		}
		if blk.Type == typ {
			return blk.Bytes, nil
		}
	}
}

// CertNames is the identity set of a certificate.
func CertNames(c *x509.Certificate) []string {
	return Names(c.Subject.CommonName, c.DNSNames, c.IPAddresses)
}

// CSRNames is the identity set of a certificate request.
func CSRNames(r *x509.CertificateRequest) []string {
	return Names(r.Subject.CommonName, r.DNSNames, r.IPAddresses)
}

// CheckCSR refuses a request whose CN is not certname, whose names are not
// exactly want, or (when pubDER is given) whose key is not the host's own:
// what troupe checks on the CA before it signs anything.
func CheckCSR(csrPEM []byte, certname string, want []string, pubDER []byte) error {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return fmt.Errorf("certificate request: %w", err)
	}
	if !strings.EqualFold(csr.Subject.CommonName, certname) {
		return fmt.Errorf("certificate request is for %q, not %q", csr.Subject.CommonName, certname)
	}
	if d := DiffNames(CSRNames(csr), want); d != "" {
		return fmt.Errorf("certificate request for %s names %s; want exactly %s (%s)",
			certname, strings.Join(CSRNames(csr), ", "), strings.Join(want, ", "), d)
	}
	if pubDER != nil {
		der, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
		if err != nil {
			return err
		}
		if !bytes.Equal(der, pubDER) {
			return fmt.Errorf("certificate request for %s carries a key that is not the host's own", certname)
		}
	}
	return nil
}

// CheckCert verifies a host certificate: issued by the CA in caPEM, valid
// now, CN = certname, names exactly want and (when given) the host's key.
func CheckCert(certPEM, caPEM []byte, certname string, want []string, pubDER []byte, now time.Time) error {
	c, err := ParseCert(certPEM)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if !strings.EqualFold(c.Subject.CommonName, certname) {
		return fmt.Errorf("certificate is for %q, not %q", c.Subject.CommonName, certname)
	}
	if d := DiffNames(CertNames(c), want); d != "" {
		return &NamesError{Certname: certname, Got: CertNames(c), Want: want, Diff: d}
	}
	if pubDER != nil {
		der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
		if err != nil {
			return err
		}
		if !bytes.Equal(der, pubDER) {
			return fmt.Errorf("certificate for %s does not match the host's key", certname)
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate to verify against")
	}
	_, err = c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("certificate for %s: %w", certname, err)
	}
	return nil
}

// NamesError is a certificate whose names are not the expected ones.
type NamesError struct {
	Certname  string
	Got, Want []string
	Diff      string
}

func (e *NamesError) Error() string {
	return fmt.Sprintf("certificate of %s names %s; want exactly %s (%s)",
		e.Certname, strings.Join(e.Got, ", "), strings.Join(e.Want, ", "), e.Diff)
}
