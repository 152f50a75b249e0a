package step

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
)

// PuppetCARenew renews the CA's own certificates on the CA host when one
// ends within `within`: each certificate of ca_crt.pem (Puppet 7+: the
// intermediate, then the root) is signed again with the key it already has,
// keeping its subject and subject key identifier, so every certificate the
// CA signed still chains and no agent or server needs a new one (what
// puppetlabs/ca_extend does for a single CA). The keys never leave the CA
// host: openssl signs there, in a root-only directory under cadir; troupe
// downloads only the candidate bundle and checks it (same CAs, same keys,
// chain sound, not shorter, the CA host's own certificate verifies) before
// it replaces ca_crt.pem and the CA host's localcacert, atomically. The CA
// must be backed up before (role ca-backup) and reloaded after.
//
// check: true only reads: Data.due says whether a renewal is due.
type PuppetCARenew struct {
	Days   string `yaml:"days"`   // validity of the renewed certificates, in days (default 5475, Puppet's ca_ttl)
	Within string `yaml:"within"` // renew when a CA certificate ends within this (default 730d)
	Check  bool   `yaml:"check"`
}

func (p *PuppetCARenew) ReadOnly() bool { return p.Check }
func (p *PuppetCARenew) Title() string  { return "Renew the CA certificates (same keys)" }

func (p *PuppetCARenew) Validate() error {
	if err := checkHorizon(p.Within); err != nil {
		return fmt.Errorf("within: %w", err)
	}
	if p.Days != "" && !strings.Contains(p.Days, "{{") {
		if n, err := strconv.Atoi(p.Days); err != nil || n < 1 {
			return fmt.Errorf("days %q: a whole number of days", p.Days)
		}
	}
	return nil
}

func (p *PuppetCARenew) Run(ctx context.Context, x *Exec) (Result, error) {
	ws, within, err := renderHorizon(x, p.Within, "730d")
	if err != nil {
		return Result{}, fmt.Errorf("within: %w", err)
	}
	ds, err := x.Render(dflt(p.Days, "5475"))
	if err != nil {
		return Result{}, err
	}
	days, err := strconv.Atoi(strings.TrimSpace(ds))
	if err != nil || days < 1 {
		return Result{}, fmt.Errorf("days %q: a whole number of days", ds)
	}
	if !p.Check && time.Duration(days)*24*time.Hour <= within {
		return Result{}, fmt.Errorf("days %d is not longer than within %s: the renewed CA would be due again at once", days, ws)
	}
	s, err := puppetSettings(ctx, x, "server", "", "cadir", "localcacert", "hostcert")
	if err != nil {
		return Result{}, err
	}
	bundlePath := path.Join(s["cadir"], "ca_crt.pem")
	old, err := x.Conn.Download(ctx, bundlePath, x.Sudo)
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", bundlePath, err)
	}
	certs, err := puppet.ParseBundle(old)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", bundlePath, err)
	}
	soonest := certs[0]
	for _, c := range certs {
		if c.NotAfter.Before(soonest.NotAfter) {
			soonest = c
		}
	}
	now := time.Now()
	due := soonest.NotAfter.Before(now.Add(within))
	data := map[string]any{"due": due, "not_after_before": soonest.NotAfter.UTC().Format(time.RFC3339)}
	until := fmt.Sprintf("%q ends %s (%d d)", soonest.Subject.CommonName, soonest.NotAfter.UTC().Format(time.DateOnly), int(soonest.NotAfter.Sub(now).Hours()/24))
	switch {
	case !due:
		return Result{Msg: until + ", beyond the renewal window (" + ws + ")", Data: data}, nil
	case p.Check:
		return Result{Msg: until + ": inside the renewal window (" + ws + ")", Data: data}, nil
	case len(certs) > 2:
		return Result{}, fmt.Errorf("%s holds %d certificates; troupe renews a CA of one or two (root, intermediate)", bundlePath, len(certs))
	case x.Noop:
		x.Emit(report.Event{Kind: report.WouldRun, Text: fmt.Sprintf("sign the %d CA certificate(s) again with their own keys for %d days; %s", len(certs), days, until)})
		return Result{Changed: true, Msg: "would renew: " + until, Data: data}, nil
	}

	work := path.Join(s["cadir"], ".troupe-renew")
	if _, err := x.MustChange(ctx, renewScript(s["cadir"], work, certs, days), ""); err != nil {
		return Result{}, fmt.Errorf("renew on the CA host: %w", err)
	}
	defer x.Change(context.WithoutCancel(ctx), "rm -rf "+render.ShellQuote(work), "")
	fresh, err := x.Conn.Download(ctx, path.Join(work, "bundle.pem"), x.Sudo)
	if err != nil {
		return Result{}, fmt.Errorf("read the renewed bundle: %w", err)
	}
	if err := puppet.CheckRenewedBundle(fresh, old); err != nil {
		return Result{}, fmt.Errorf("refusing the renewed bundle: %w", err)
	}
	// A certificate the CA signed must still verify under the new bundle.
	if host, err := x.Conn.Download(ctx, s["hostcert"], x.Sudo); err == nil {
		if err := verifyUnder(host, fresh); err != nil {
			return Result{}, fmt.Errorf("refusing the renewed bundle: the CA host's own certificate: %w", err)
		}
	}
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{bundlePath, 0o640}, {s["localcacert"], 0o644}} {
		if _, err := x.WriteFile(ctx, transport.File{Path: f.path, Content: fresh, Mode: f.mode, Owner: "puppet", Group: "puppet"}); err != nil {
			return Result{}, err
		}
	}
	nb, _ := puppet.ParseBundle(fresh)
	after := nb[0].NotAfter
	for _, c := range nb {
		if c.NotAfter.Before(after) {
			after = c.NotAfter
		}
	}
	data["not_after_after"] = after.UTC().Format(time.RFC3339)
	return Result{Changed: true, Data: data,
		Msg: fmt.Sprintf("renewed %d CA certificate(s) with their keys: until %s (was %s)", len(nb), after.UTC().Format(time.DateOnly), soonest.NotAfter.UTC().Format(time.DateOnly))}, nil
}

// renewScript signs each CA certificate again on the CA host: the root
// (the last, self-signed) with root_key.pem, then the intermediate (the
// first) with ca_key.pem as its key and the new root as issuer; a single
// self-signed CA with ca_key.pem. Subject, key, subject key identifier and
// serial are kept: Puppet's CA writes the intermediate's name and serial
// into the authority key identifier of every certificate it signs, and
// OpenSSL looks for an issuer with that serial (a new serial left every
// agent certificate without an issuer, on the lab).
func renewScript(cadir, work string, certs []*x509.Certificate, days int) string {
	q := render.ShellQuote
	var b strings.Builder
	fmt.Fprintf(&b, "set -eu; umask 077; cd %s; rm -rf %s; install -d -m 0700 %s; w=%s\n", q(cadir), q(work), q(work), q(work))
	b.WriteString(`awk -v w="$w" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (w "/old" n ".pem")}' ca_crt.pem` + "\n")
	n := len(certs)
	keyOf := func(i int) string { // 1-based, as the files are numbered
		if i == 1 {
			return "ca_key.pem"
		}
		return "root_key.pem"
	}
	for i := n; i >= 1; i-- {
		c := certs[i-1]
		ski := strings.ToUpper(fmt.Sprintf("%x", c.SubjectKeyId))
		var pairs []string
		for j := 0; j+1 < len(ski); j += 2 {
			pairs = append(pairs, ski[j:j+2])
		}
		fmt.Fprintf(&b, "printf '%%s\\n' '[ca]' 'basicConstraints=critical,CA:TRUE' 'keyUsage=critical,keyCertSign,cRLSign' 'subjectKeyIdentifier=%s' 'authorityKeyIdentifier=keyid:always' 'nsComment=\"Puppet Server Internal Certificate\"' > \"$w/ext%d.cnf\"\n",
			strings.Join(pairs, ":"), i)
		fmt.Fprintf(&b, "openssl x509 -x509toreq -in \"$w/old%d.pem\" -signkey %s -out \"$w/req%d.pem\"\n", i, keyOf(i), i)
		signer := fmt.Sprintf("-signkey %s", keyOf(i)) // self-signed: the root, or a single CA
		if i < n {
			signer = fmt.Sprintf("-CA \"$w/new%d.pem\" -CAkey %s", i+1, keyOf(i+1))
		}
		fmt.Fprintf(&b, "openssl x509 -req -in \"$w/req%d.pem\" %s -days %d -sha256 -set_serial 0x%x -extfile \"$w/ext%d.cnf\" -extensions ca -out \"$w/new%d.pem\"\n",
			i, signer, days, c.SerialNumber, i, i)
	}
	b.WriteString("cat")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, " \"$w/new%d.pem\"", i)
	}
	b.WriteString(" > \"$w/bundle.pem\"\n")
	// The check that matters is OpenSSL's, as agents (Ruby) and Jetty's
	// clients use it: a sample of the certificates the CA signed must
	// verify under the new bundle alone.
	b.WriteString(`for f in $(ls -1 signed/*.pem 2>/dev/null | head -20); do openssl verify -CAfile "$w/bundle.pem" "$f" >/dev/null || { echo "$f does not verify under the renewed bundle" >&2; exit 1; }; done` + "\n")
	return b.String()
}

// verifyUnder checks a leaf certificate against a CA bundle (every
// certificate of it a root, as Puppet's verifier treats localcacert).
func verifyUnder(leafPEM, bundlePEM []byte) error {
	leaf, err := puppet.ParseCert(leafPEM)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundlePEM) {
		return errors.New("no certificate in the bundle")
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// PuppetCABundle puts the CA's bundle (ca_crt.pem) on this host, at its
// localcacert or at path (PuppetDB's copy), after checking that it holds
// the same CAs with the same keys as the host's copy and none ending
// sooner: a renewed CA reaches every host without a new certificate
// anywhere. A bundle of another CA is refused (that is a new CA: plan
// ca-rebuild). check: true only reads: Data.state is same or differs.
type PuppetCABundle struct {
	CA    string `yaml:"ca"`    // inventory name of the CA host; default the site's (first of group ca)
	Path  string `yaml:"path"`  // default: the host's localcacert
	Owner string `yaml:"owner"` // owner and group of the file; default: as written
	Check bool   `yaml:"check"`
}

func (p *PuppetCABundle) ReadOnly() bool { return p.Check }
func (p *PuppetCABundle) Title() string  { return "The CA's certificate bundle from " + caTitle(p.CA) }

func (p *PuppetCABundle) Validate() error {
	return nil
}

// Peers is the CA host (step.PeerUser).
func (p *PuppetCABundle) Peers(sc Scope) ([]string, error) { return caPeer(sc, p.CA) }

func (p *PuppetCABundle) Run(ctx context.Context, x *Exec) (Result, error) {
	dest, err := x.Render(p.Path)
	if err != nil {
		return Result{}, err
	}
	owner, err := x.Render(p.Owner)
	if err != nil {
		return Result{}, err
	}
	bundle, err := caFile(ctx, x, p.CA, "ca_crt.pem")
	if err != nil {
		return Result{}, err
	}
	if dest == "" {
		s, err := puppetSettings(ctx, x, "main", "", "localcacert")
		if err != nil {
			return Result{}, err
		}
		dest = s["localcacert"]
	}
	have, err := x.Conn.Download(ctx, dest, x.Sudo)
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", dest, err)
	}
	data := map[string]any{"path": dest, "state": "same"}
	if string(have) == string(bundle) {
		return Result{Msg: dest + ": the CA's bundle", Data: data}, nil
	}
	data["state"] = "differs"
	if p.Check {
		return Result{Msg: dest + ": not the CA's bundle", Data: data}, nil
	}
	if err := puppet.SameCA(have, bundle); err != nil {
		return Result{}, fmt.Errorf("refusing the CA's bundle for %s: %w", dest, err)
	}
	changed, err := x.WriteFile(ctx, transport.File{Path: dest, Content: bundle, Mode: 0o644, Owner: owner, Group: owner})
	if err != nil {
		return Result{}, err
	}
	return Result{Changed: changed, Msg: dest + ": the CA's bundle, written", Data: data}, nil
}
