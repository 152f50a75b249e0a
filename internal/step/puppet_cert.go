package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
)

// PuppetCert makes sure this host holds a certificate signed by the site's
// CA that names exactly certname + dns_alt_names. A matching certificate is
// left alone; one with other names is an error (reissuing is a deliberate
// act, not a side effect of a bootstrap). Otherwise:
//
//  1. `puppet ssl submit_request` on the host. Not `puppet ssl bootstrap`:
//     it waits for the signature forever (maxwaitforcert defaults to
//     unlimited: puppetlabs/puppet lib/puppet/defaults.rb).
//  2. troupe reads the CSR from the CA's requests/ directory and refuses to
//     sign unless its CN, its names and its public key are exactly this
//     host's: enabling allow-subject-alt-names means "carefully inspect any
//     CSRs with SANs" (puppet.com/docs/puppet/8/config_file_ca.html).
//  3. `puppetserver ca sign` on the CA host (through the inventory).
//  4. `puppet ssl download_cert` on the host, then the certificate is
//     verified here: chain to the CA, names, key.
//
// check: true only reads: Data.state says ok, missing, or why the
// certificate would be reissued (names, invalid), and nothing changes.
// reissue: true replaces a certificate that is not ok (other names, expired,
// another CA, a key that does not match): the host's certificate and key are
// copied to a root-only backup first, the certificate is cleaned on the CA
// (revoked, so the old one is refused from then on) and on the host (a new
// key), and the new one is requested and checked as above. The host must be
// out of service meanwhile (a compiler out of the pool): between the clean
// and the download it holds no certificate. A run stopped at any point is
// completed by the next one. Never for the CA host itself, whose certificate
// is generated offline on the CA (`puppetserver ca generate --ca-client`).
type PuppetCert struct {
	Certname    string   `yaml:"certname"`      // default: the host's inventory name (troupe's certname for it)
	DNSAltNames []string `yaml:"dns_alt_names"` // besides the certname; none for an agent
	CA          string   `yaml:"ca"`            // inventory name of the CA host that signs; default the site's (first of group ca)
	Check       bool     `yaml:"check"`         // read only: report the state
	Reissue     bool     `yaml:"reissue"`       // replace a certificate that is not ok
	BackupDir   string   `yaml:"backup_dir"`    // reissue: where the old certificate and key are kept (default /var/lib/troupe/backups)
}

func (p *PuppetCert) Title() string { return "Puppet certificate signed by " + caTitle(p.CA) }

// caTitle names the CA host of an action for its title.
func caTitle(ref string) string {
	if ref == "" {
		return "the site's CA"
	}
	return ref
}

func (p *PuppetCert) Validate() error {
	if p.Check && p.Reissue {
		return errors.New("check (read only) and reissue exclude each other")
	}
	return nil
}

// ReadOnly: a check changes nothing and runs under --noop too.
func (p *PuppetCert) ReadOnly() bool { return p.Check }

// Peers is the CA host (step.PeerUser), except for a check, which reads only
// the host's own files. The runner connects and locks it even for a host
// whose certificate turns out to be in place: that is known only when the
// step runs.
func (p *PuppetCert) Peers(sc Scope) ([]string, error) {
	if p.Check {
		return nil, nil
	}
	return p.caName(sc)
}

func (p *PuppetCert) caName(sc Scope) ([]string, error) { return caPeer(sc, p.CA) }

// caPeer renders an action's ca: field into the CA host it names.
func caPeer(sc Scope, ref string) ([]string, error) {
	if ref == "" { // the site's CA
		if cas := sc.Groups["ca"]; len(cas) > 0 {
			return cas[:1], nil
		}
		return nil, fmt.Errorf("ca: no host in group ca (name the CA host with ca:)")
	}
	ca, err := sc.Render(ref)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if ca == "" {
		return nil, fmt.Errorf("ca %q names no host", ref)
	}
	return []string{ca}, nil
}

// caFile reads a file of the CA directory (ca_crt.pem, ca_crl.pem) on the
// CA host that ref names.
func caFile(ctx context.Context, x *Exec, ref, file string) ([]byte, error) {
	names, err := caPeer(x.Scope(), ref)
	if err != nil {
		return nil, err
	}
	ca := &caSide{name: names[0]}
	if err := ca.open(ctx, x); err != nil {
		return nil, err
	}
	src := path.Join(ca.dir, file)
	b, err := ca.x.Conn.Download(ctx, src, ca.x.Sudo)
	if err != nil {
		return nil, fmt.Errorf("ca %s: read %s: %w", ca.name, src, err)
	}
	return b, nil
}

// certPaths are the host's own SSL paths, read with `puppet config print`.
type certPaths struct {
	certname, hostcert, hostprivkey, localcacert, hostcrl string
}

// caSide is the CA host as the step uses it, reached on first use.
type caSide struct {
	name string
	x    *Exec
	dir  string // its cadir
}

func (c *caSide) open(ctx context.Context, x *Exec) error {
	if c.x != nil {
		return nil
	}
	ca, err := x.Peer(ctx, c.name)
	if err != nil {
		return fmt.Errorf("ca %s: %w", c.name, err)
	}
	// The cadir is read once a run (x.Memo): every host's certificate step
	// needs it, and a `puppet config print` on the CA per host would load
	// the CA with a Ruby start each. Not once a process: a long-lived
	// `webhook serve` outlives a ca-rebuild.
	key := "cadir " + c.name
	if dir, ok := x.Memo.Get(key); ok {
		c.x, c.dir = ca, dir
		return nil
	}
	s, err := puppetSettings(ctx, ca, "server", "", "cadir")
	if err != nil {
		return fmt.Errorf("ca %s: %w", c.name, err)
	}
	x.Memo.Put(key, s["cadir"])
	c.x, c.dir = ca, s["cadir"]
	return nil
}

// crl is the CRL a certificate in place is checked against: the CA's own
// (ca_crl.pem, current by definition) when the step works with the CA, the
// host's copy for a check. nil when there is none; under --noop a CA that
// cannot be read yet (a new site) is no error.
func (p *PuppetCert) crl(ctx context.Context, x *Exec, ca *caSide, hp certPaths) ([]byte, error) {
	var b []byte
	var err error
	if p.Check {
		b, err = x.Conn.Download(ctx, hp.hostcrl, x.Sudo)
	} else {
		if err := ca.open(ctx, x); err != nil {
			if x.Noop {
				return nil, nil
			}
			return nil, err
		}
		b, err = ca.x.Conn.Download(ctx, path.Join(ca.dir, "ca_crl.pem"), ca.x.Sudo)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Run does what the step's mode asks: check reads only, reissue replaces a
// certificate that is not OK, and bootstrap (neither) issues a missing one
// and refuses to replace one.
func (p *PuppetCert) Run(ctx context.Context, x *Exec) (Result, error) {
	j, err := p.job(ctx, x)
	if err != nil {
		return Result{}, err
	}
	switch {
	case p.Check:
		return p.check(ctx, x, j)
	case p.Reissue:
		return p.reissue(ctx, x, j)
	}
	return p.bootstrap(ctx, x, j)
}

// certJob is one host's certificate step: the names its certificate must
// hold, its SSL paths, the CA that signs, and the Result's Data.
type certJob struct {
	hp   certPaths
	alts []string // dns_alt_names as given, blanks dropped
	want []string // the certname and alt names, as the certificate must hold them
	ca   *caSide
	data map[string]any
}

// job renders the step's fields and reads the host's SSL paths.
func (p *PuppetCert) job(ctx context.Context, x *Exec) (*certJob, error) {
	certname, err := x.Render(p.Certname)
	if err != nil {
		return nil, err
	}
	if certname == "" { // troupe names a host's certificate by its inventory name
		certname = x.Host.Name
	}
	alts, err := x.RenderAll(p.DNSAltNames)
	if err != nil {
		return nil, err
	}
	cas, err := p.caName(x.Scope())
	if err != nil {
		return nil, err
	}
	alts = splitNames(alts)
	s, err := puppetSettings(ctx, x, "main", certname, "certname", "hostcert", "hostprivkey", "localcacert", "hostcrl")
	if err != nil {
		return nil, err
	}
	hp := certPaths{s["certname"], s["hostcert"], s["hostprivkey"], s["localcacert"], s["hostcrl"]}
	want := puppet.ExpectedNames(hp.certname, alts)
	return &certJob{hp: hp, alts: alts, want: want, ca: &caSide{name: cas[0]},
		// dns_alt_names as given (in their order), for a plan that writes
		// them into puppet.conf as the role that built the host did.
		data: map[string]any{"certname": hp.certname, "names": want, "dns_alt_names": strings.Join(alts, ","), "hostcert": hp.hostcert}}, nil
}

// check (check: true) reads only: Data.state says ok, missing, or why the
// certificate would be reissued; nothing changes, the CA is not asked.
func (p *PuppetCert) check(ctx context.Context, x *Exec, j *certJob) (Result, error) {
	have, verr, err := p.inPlace(ctx, x, j)
	switch {
	case err != nil:
		return Result{}, err
	case !have:
		j.data["state"] = "missing"
		return Result{Msg: j.hp.certname + ": no certificate at " + j.hp.hostcert, Data: j.data}, nil
	case verr != nil:
		return Result{Msg: j.hp.certname + ": " + verr.Error(), Data: j.data}, nil
	}
	return j.ok(), nil
}

// bootstrap issues a certificate to a host that has none, keeps one that
// is OK, and refuses to replace one that is not: reissuing is a
// deliberate act, with the way to do it in the error.
func (p *PuppetCert) bootstrap(ctx context.Context, x *Exec, j *certJob) (Result, error) {
	have, verr, err := p.inPlace(ctx, x, j)
	var ne *puppet.NamesError
	switch {
	case err != nil:
		return Result{}, err
	case !have:
		return p.issue(ctx, x, j)
	case verr == nil:
		return j.ok(), nil
	case errors.As(verr, &ne):
		return Result{}, fmt.Errorf("%w; reissue it deliberately (plan regen-cert for a compiler, ca-cert for the CA host), bootstrap does not", verr)
	case errors.Is(verr, puppet.ErrRevoked):
		return Result{}, fmt.Errorf("%w; reissue it deliberately (plan revoke with reissue=true, or regen-cert for a compiler)", verr)
	}
	return Result{}, verr
}

// reissue (reissue: true) replaces a certificate that is not OK: retired
// first (backed up, cleaned on the CA and on the host), then issued anew.
// A host with none gets one; one that is OK is kept.
func (p *PuppetCert) reissue(ctx context.Context, x *Exec, j *certJob) (Result, error) {
	have, verr, err := p.inPlace(ctx, x, j)
	switch {
	case err != nil:
		return Result{}, err
	case !have:
		return p.issue(ctx, x, j)
	case verr == nil:
		return j.ok(), nil
	case x.Host.Name == j.ca.name:
		return Result{}, fmt.Errorf("%w; the CA host's own certificate is not reissued this way (it is generated offline on the CA)", verr)
	case x.Noop:
		x.Emit(report.Event{Kind: report.WouldRun, Text: fmt.Sprintf("back up, revoke and replace %s's certificate (%s): new key, %s, signed on %s",
			j.hp.certname, verr, strings.Join(j.want, ", "), j.ca.name)})
		return Result{Changed: true, Msg: "would reissue " + j.hp.certname, Data: j.data}, nil
	}
	x.Emit(line("%s: %s; reissuing", j.hp.certname, verr))
	if err := p.retire(ctx, x, j.ca, j.hp); err != nil {
		return Result{}, err
	}
	return p.issue(ctx, x, j)
}

// inPlace reads the host's certificate, if it has one (have), and judges
// it against the names, the key, the CA and the CRL: verr is why it is not
// OK, nil when it is. Data.state (and Data.problem) say the same.
func (p *PuppetCert) inPlace(ctx context.Context, x *Exec, j *certJob) (have bool, verr, err error) {
	cert, err := x.Conn.Download(ctx, j.hp.hostcert, x.Sudo)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil, nil
	case err != nil:
		return false, nil, fmt.Errorf("read %s: %w", j.hp.hostcert, err)
	}
	crl, err := p.crl(ctx, x, j.ca, j.hp)
	if err != nil {
		return true, nil, err
	}
	verr = p.verify(ctx, x, j.hp, cert, j.want, crl)
	var ne *puppet.NamesError
	switch {
	case verr == nil:
		j.data["state"] = "ok"
	case errors.As(verr, &ne):
		j.data["state"], j.data["problem"] = "names", verr.Error()
	case errors.Is(verr, puppet.ErrRevoked):
		j.data["state"], j.data["problem"] = "revoked", verr.Error()
	default:
		j.data["state"], j.data["problem"] = "invalid", verr.Error()
	}
	return true, verr, nil
}

// ok is the result for a certificate already in place and OK.
func (j *certJob) ok() Result {
	return Result{Msg: j.hp.certname + ": certificate OK (" + strings.Join(j.want, ", ") + ")", Data: j.data}
}

// issue gets the host a certificate (see PuppetCert): the CA's bundle
// when it has none, a request, its check, the signature on the CA, the
// download, and the check of what came back. Each part an earlier,
// interrupted run did is not done again.
func (p *PuppetCert) issue(ctx context.Context, x *Exec, j *certJob) (Result, error) {
	hp, ca := j.hp, j.ca
	if x.Noop {
		x.Emit(report.Event{Kind: report.WouldRun, Text: fmt.Sprintf("request a certificate for %s (%s), check it and sign it on %s",
			hp.certname, strings.Join(j.want, ", "), ca.name)})
		return Result{Changed: true, Msg: "would request and sign " + hp.certname, Data: j.data}, nil
	}

	if err := ca.open(ctx, x); err != nil {
		return Result{}, err
	}
	if err := p.trustCA(ctx, x, ca, hp); err != nil {
		return Result{}, err
	}
	signedPath := path.Join(ca.dir, "signed", hp.certname+".pem")
	reqPath := path.Join(ca.dir, "requests", hp.certname+".pem")

	_, err := ca.x.Conn.Download(ctx, signedPath, ca.x.Sudo)
	switch {
	case err == nil:
		// Signed in an earlier run that stopped before the download: fetch
		// it; verify() below still checks names and key.
		x.Emit(line("%s is already signed on %s; downloading it", hp.certname, ca.name))
	case !errors.Is(err, fs.ErrNotExist):
		return Result{}, fmt.Errorf("ca %s: read %s: %w", ca.name, signedPath, err)
	default:
		if err := p.request(ctx, x, ca.x, hp, j.alts, reqPath); err != nil {
			return Result{}, err
		}
		pubDER, err := hostPublicKey(ctx, x, hp.hostprivkey)
		if err != nil {
			return Result{}, err
		}
		if pubDER == nil {
			return Result{}, fmt.Errorf("no private key at %s after the request", hp.hostprivkey)
		}
		csr, err := ca.x.Conn.Download(ctx, reqPath, ca.x.Sudo)
		if err != nil {
			return Result{}, fmt.Errorf("ca %s: read %s: %w", ca.name, reqPath, err)
		}
		if err := puppet.CheckCSR(csr, hp.certname, j.want, pubDER); err != nil {
			return Result{}, fmt.Errorf("refusing to sign: %w", err)
		}
		x.Emit(line("CSR of %s names exactly %s; signing on %s", hp.certname, strings.Join(j.want, ", "), ca.name))
		if _, err := ca.x.MustChange(ctx, dflt(ca.x.bins().Puppetserver, "puppetserver")+" ca sign --certname "+render.ShellQuote(hp.certname), ""); err != nil {
			return Result{}, fmt.Errorf("ca %s: sign %s: %w", ca.name, hp.certname, err)
		}
	}
	if _, err := x.MustChange(ctx, dflt(x.bins().Puppet, "puppet")+" ssl download_cert --certname "+render.ShellQuote(hp.certname)+caServer(ca.name), ""); err != nil {
		return Result{}, fmt.Errorf("download certificate: %w", err)
	}
	cert, err := x.Conn.Download(ctx, hp.hostcert, x.Sudo)
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", hp.hostcert, err)
	}
	// The CRL read before (if any) does not list a certificate just signed.
	if err := p.verify(ctx, x, hp, cert, j.want, nil); err != nil {
		return Result{}, err
	}
	j.data["state"] = "ok"
	if why, ok := j.data["problem"]; ok {
		j.data["reissued"] = why // what was wrong with the one it replaced
		delete(j.data, "problem")
	}
	return Result{Changed: true, Msg: hp.certname + ": signed (" + strings.Join(j.want, ", ") + ")", Data: j.data}, nil
}

// retire takes an unwanted certificate out of the way before a new one is
// requested: a verified root-only copy of the host's certificate and key,
// then `puppetserver ca clean` on the CA (revoked, and gone from signed/,
// so the CA signs the new request), then `puppet ssl clean` on the host (a
// new key comes with the request; the CA certificate and CRL stay). Each
// part is skipped when an earlier, interrupted run did it.
func (p *PuppetCert) retire(ctx context.Context, x *Exec, ca *caSide, hp certPaths) error {
	dir := p.BackupDir
	if dir == "" {
		dir = "/var/lib/troupe/backups"
	}
	backup := `set -eu; umask 077; install -d -m 0700 ` + render.ShellQuote(dir) + `
d=` + render.ShellQuote(dir) + `/ssl-` + render.ShellQuote(hp.certname) + `-$(date -u +%Y%m%dT%H%M%SZ)
install -d -m 0700 "$d"
for f in ` + render.ShellQuote(hp.hostcert) + ` ` + render.ShellQuote(hp.hostprivkey) + `; do
  # certs/NAME.pem and private_keys/NAME.pem: one base name, two directories
  test ! -e "$f" || { s="$d/$(basename "$(dirname "$f")")"; install -d -m 0700 "$s"; cp -p "$f" "$s/"; cmp -s "$f" "$s/$(basename "$f")"; }
done
echo "$d"`
	res, err := x.MustChange(ctx, backup, "")
	if err != nil {
		return fmt.Errorf("back up the certificate and key: %w", err)
	}
	x.Emit(line("old certificate and key of %s kept in %s", hp.certname, strings.TrimSpace(res.Stdout)))

	if err := ca.open(ctx, x); err != nil {
		return err
	}
	signedPath := path.Join(ca.dir, "signed", hp.certname+".pem")
	switch _, err := ca.x.Conn.Download(ctx, signedPath, ca.x.Sudo); {
	case err == nil:
		if _, err := ca.x.MustChange(ctx, dflt(ca.x.bins().Puppetserver, "puppetserver")+" ca clean --certname "+render.ShellQuote(hp.certname), ""); err != nil {
			return fmt.Errorf("ca %s: clean %s: %w", ca.name, hp.certname, err)
		}
		x.Emit(line("%s revoked and cleaned on %s", hp.certname, ca.name))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("ca %s: read %s: %w", ca.name, signedPath, err)
	}
	if _, err := x.MustChange(ctx, dflt(x.bins().Puppet, "puppet")+" ssl clean --certname "+render.ShellQuote(hp.certname), ""); err != nil {
		return fmt.Errorf("puppet ssl clean: %w", err)
	}
	return nil
}

// trustCA gives a host that has no CA certificate yet the CA's bundle,
// read on the CA host over troupe's own (host-key verified) connection.
// Otherwise `puppet ssl submit_request` fetches it from ca_server over a
// connection it cannot verify yet: trust on first use, at the one moment
// (a new site, a new CA) when nothing else vouches for it.
func (p *PuppetCert) trustCA(ctx context.Context, x *Exec, ca *caSide, hp certPaths) error {
	if _, err := x.Conn.Download(ctx, hp.localcacert, x.Sudo); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil // there is one; verify() judges it
	}
	src := path.Join(ca.dir, "ca_crt.pem")
	bundle, err := ca.x.Conn.Download(ctx, src, ca.x.Sudo)
	if err != nil {
		return fmt.Errorf("ca %s: read %s: %w", ca.name, src, err)
	}
	if _, err := x.MustChange(ctx, "install -d -m 0755 "+render.ShellQuote(path.Dir(hp.localcacert)), ""); err != nil {
		return err
	}
	if _, err := x.WriteFile(ctx, transport.File{Path: hp.localcacert, Content: bundle, Mode: 0o644}); err != nil {
		return err
	}
	x.Emit(line("%s: the CA's bundle from %s (over SSH, not fetched unverified by the agent)", hp.localcacert, ca.name))
	return nil
}

// caServer points a `puppet ssl` command at the CA host that signs, by
// its own name (which its certificate carries), not at ca_server: with
// ca_route sni ca_name is the load balancer's, which bootstrap builds
// last, and after plan ca-failover it may still name the old CA while
// troupe enrols against the new one.
func caServer(name string) string { return " --ca_server " + render.ShellQuote(name) }

// request submits a CSR unless the CA already holds one for this certname
// (an earlier run stopped after submitting; its key is checked before signing).
func (p *PuppetCert) request(ctx context.Context, x, ca *Exec, hp certPaths, alts []string, reqPath string) error {
	if _, err := ca.Conn.Download(ctx, reqPath, ca.Sudo); err == nil {
		x.Emit(line("%s already has a pending request on %s", hp.certname, ca.Host.Name))
		return nil
	}
	cmd := dflt(x.bins().Puppet, "puppet") + " ssl submit_request --certname " + render.ShellQuote(hp.certname) + caServer(ca.Host.Name)
	if len(alts) > 0 {
		cmd += " --dns_alt_names " + render.ShellQuote(strings.Join(alts, ","))
	}
	if _, err := x.MustChange(ctx, cmd, ""); err != nil {
		return fmt.Errorf("submit certificate request: %w", err)
	}
	return nil
}

// verify checks a host certificate against the host's CA cert and key, and
// against crl when there is one.
func (p *PuppetCert) verify(ctx context.Context, x *Exec, hp certPaths, cert []byte, want []string, crl []byte) error {
	caPEM, err := x.Conn.Download(ctx, hp.localcacert, x.Sudo)
	if err != nil {
		return fmt.Errorf("read %s: %w", hp.localcacert, err)
	}
	pubDER, err := hostPublicKey(ctx, x, hp.hostprivkey)
	if err != nil {
		return err
	}
	if err := puppet.CheckCert(cert, caPEM, hp.certname, want, pubDER, time.Now()); err != nil {
		return err
	}
	if crl == nil {
		return nil
	}
	c, err := puppet.ParseCert(cert)
	if err != nil {
		return err
	}
	at, revoked, err := puppet.Revoked(c, crl)
	if err != nil {
		return err
	}
	if revoked {
		return fmt.Errorf("certificate of %s (serial %s): %w on %s", hp.certname, c.SerialNumber, puppet.ErrRevoked, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// hostPublicKey derives the public key from the host's private key on the
// host (the private key never leaves it); nil when there is no key file.
// Puppet 6+ no longer writes public_keys/, so the key is the only source.
func hostPublicKey(ctx context.Context, x *Exec, privkey string) ([]byte, error) {
	res, err := x.Probe(ctx, "test ! -e "+render.ShellQuote(privkey)+" || openssl pkey -pubout -in "+render.ShellQuote(privkey))
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("public key of %s: %s", privkey, lastLine(res.Stderr))
	}
	if strings.TrimSpace(res.Stdout) == "" {
		return nil, nil
	}
	der, err := puppet.ParsePublicKey([]byte(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", privkey, err)
	}
	return der, nil
}

// splitNames accepts both list items and comma-separated strings (a rendered
// "{{ join "," ... }}"), dropping blanks.
func splitNames(in []string) []string {
	var out []string
	for _, s := range in {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

func line(format string, a ...any) report.Event {
	return report.Event{Kind: report.HostLine, Stream: "stdout", Text: fmt.Sprintf(format, a...)}
}
