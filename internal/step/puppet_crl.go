package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/transport"
)

// PuppetCRL puts the CA's full CRL on this host, where its Puppet reads it
// (hostcrl; on a compiler also webserver.conf's ssl-crl-path): a revocation
// then reaches the compilers now, not at their agent's next CRL refresh
// (crl_refresh_interval, a day by default). Always ca_crl.pem, never
// infra_crl.pem: with the infrastructure CRL on, the CA serves only that one
// and compilers that fetch it would stop seeing revoked agents
// (puppetserver certificate_authority_core.clj). Before it is written the
// CRL is checked: every CRL in it signed by a CA the host trusts
// (localcacert), and none older than the host's. Puppet Server reloads it
// when the file changes while its filesystem-watch-service runs (kept on
// troupe's compilers; openvox-docs crl_refresh.markdown).
type PuppetCRL struct {
	CA    string `yaml:"ca"`    // inventory name of the CA host; default the site's (first of group ca)
	Owner string `yaml:"owner"` // owner of the file (puppet on a server); default: as written
}

func (p *PuppetCRL) Title() string { return "The CA's CRL from " + caTitle(p.CA) }

func (p *PuppetCRL) Validate() error {
	return nil
}

// Peers is the CA host (step.PeerUser).
func (p *PuppetCRL) Peers(sc Scope) ([]string, error) { return caPeer(sc, p.CA) }

func (p *PuppetCRL) Run(ctx context.Context, x *Exec) (Result, error) {
	owner, err := x.Render(p.Owner)
	if err != nil {
		return Result{}, err
	}
	crl, err := caFile(ctx, x, p.CA, "ca_crl.pem")
	if err != nil {
		return Result{}, err
	}
	s, err := puppetSettings(ctx, x, "main", "", "hostcrl", "localcacert")
	if err != nil {
		return Result{}, err
	}
	caPEM, err := x.Conn.Download(ctx, s["localcacert"], x.Sudo)
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", s["localcacert"], err)
	}
	old, err := x.Conn.Download(ctx, s["hostcrl"], x.Sudo)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("read %s: %w", s["hostcrl"], err)
	}
	if err := puppet.CheckCRL(crl, caPEM, old); err != nil {
		return Result{}, fmt.Errorf("refusing the CA's CRL: %w", err)
	}
	crls, _ := puppet.ParseCRLs(crl)
	revoked := 0
	for _, c := range crls {
		revoked += len(c.RevokedCertificateEntries)
	}
	data := map[string]any{"path": s["hostcrl"], "revoked": revoked}
	changed, err := x.WriteFile(ctx, transport.File{Path: s["hostcrl"], Content: crl, Mode: 0o644, Owner: owner, Group: owner})
	if err != nil {
		return Result{}, err
	}
	msg := fmt.Sprintf("%s: the CA's CRL (%d revoked)", s["hostcrl"], revoked)
	if changed {
		msg += ", written"
	}
	return Result{Changed: changed, Msg: msg, Data: data}, nil
}
