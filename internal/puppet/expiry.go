package puppet

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Expiry is one dated item of a CA: a certificate (its not-after) or a CRL
// (its next update, after which agents refuse it).
type Expiry struct {
	Name     string    // a certificate's CN (a signed/ file: the certname); a CRL's issuer CN
	Kind     string    // "ca" (ca_crt.pem, every certificate of the chain), "crl", "cert" (signed/)
	Serial   *big.Int  // a certificate's serial; a CRL's number (nil when it has none)
	NotAfter time.Time // a CRL's next update
	File     string    // the file it came from (base name)
}

// Expiry states, as State says them.
const (
	ExpiryOK      = "ok"
	ExpiryInside  = "inside"  // not expired, but inside the horizon
	ExpiryExpired = "expired" // now is past NotAfter
)

// SerialHex is the serial as Puppet's CA inventory writes it (0x%04x).
func (e Expiry) SerialHex() string {
	if e.Serial == nil {
		return "-"
	}
	return fmt.Sprintf("0x%04x", e.Serial)
}

// DaysLeft is the whole days until NotAfter, rounded down: 0 on the last
// day, negative once expired.
func (e Expiry) DaysLeft(now time.Time) int {
	d := e.NotAfter.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days--
	}
	return days
}

// State is expired (now past NotAfter, which RFC 5280 counts as still
// valid), inside (NotAfter before now+horizon) or ok.
func (e Expiry) State(now time.Time, horizon time.Duration) string {
	switch {
	case now.After(e.NotAfter):
		return ExpiryExpired
	case e.NotAfter.Before(now.Add(horizon)):
		return ExpiryInside
	}
	return ExpiryOK
}

// CertExpiries reads every CERTIFICATE block of a PEM file (a CA bundle can
// hold a chain) as items of kind; name, when given, names them all (a
// signed/ file is named by its certname), otherwise each is named by its CN.
func CertExpiries(b []byte, kind, file, name string) ([]Expiry, error) {
	ders := pemBlocks(b, "CERTIFICATE")
	if len(ders) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE PEM block", file)
	}
	var out []Expiry
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		n := name
		if n == "" {
			n = c.Subject.CommonName
		}
		out = append(out, Expiry{Name: n, Kind: kind, Serial: c.SerialNumber, NotAfter: c.NotAfter, File: file})
	}
	return out, nil
}

// CRLExpiries reads every X509 CRL block of a PEM file (Puppet's
// ca_crl.pem holds one per CA of the chain): kind crl, NotAfter the next
// update. A CRL without a next update is an error: nothing can say when
// agents stop trusting it.
func CRLExpiries(b []byte, file string) ([]Expiry, error) {
	ders := pemBlocks(b, "X509 CRL")
	if len(ders) == 0 {
		return nil, fmt.Errorf("%s: no X509 CRL PEM block", file)
	}
	var out []Expiry
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if crl.NextUpdate.IsZero() {
			return nil, fmt.Errorf("%s: CRL of %q has no next update", file, crl.Issuer.CommonName)
		}
		out = append(out, Expiry{Name: crl.Issuer.CommonName, Kind: "crl", Serial: crl.Number, NotAfter: crl.NextUpdate, File: file})
	}
	return out, nil
}

// SortExpiries orders items soonest first (then by kind and name, so equal
// dates print in a stable order).
func SortExpiries(items []Expiry) {
	slices.SortStableFunc(items, func(a, b Expiry) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
}

// ParseHorizon reads a horizon: "90d" (whole days) or a Go duration
// ("2160h", "36h30m"). It must not be negative.
func ParseHorizon(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("horizon %q: want N days (90d) or a Go duration (2160h)", s)
		}
		if days > 100*365 {
			return 0, fmt.Errorf("horizon %q: more than 100 years", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("horizon %q: want N days (90d) or a Go duration (2160h)", s)
		}
	}
	if d < 0 {
		return 0, errors.New("horizon " + strconv.Quote(s) + " is negative")
	}
	return d, nil
}

func pemBlocks(b []byte, typ string) [][]byte {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type == typ {
			out = append(out, blk.Bytes)
		}
	}
}
