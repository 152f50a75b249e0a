package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/fanout"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/transport"
)

// Options tune one reading.
type Options struct {
	// Timeout bounds each host: connecting, logging in and its whole probe
	// script. A host past it is shown as "timeout" with what it had said.
	Timeout time.Duration
	// Horizon: certificates and CRLs ending within it are warnings.
	Horizon time.Duration
	// Dial opens a host's connection; transport.Dial unless a test swaps it.
	Dial func(ctx context.Context, cfg transport.Config) (transport.Conn, error)
	// Now is the clock (tests pin it).
	Now func() time.Time
}

// MaxAnswer bounds what is kept of a host's answer to the probe script
// (stdout, and stderr again): a healthy host's is about 3 KB (the captures
// in fixtures/status are 0.2–3.1 KB); the PuppetDB nodes query grows by
// about 150 bytes a node. A host sending more is marked as such and the
// rest is dropped, so one host cannot fill troupe's memory.
const MaxAnswer = 4 << 20

// DefaultTimeout and DefaultHorizon are the CLI's defaults.
const (
	DefaultTimeout = 10 * time.Second
	DefaultHorizon = 90 * 24 * time.Hour
)

// Specs works out what to probe on every host of inv: its roles (from the
// groups), its flavor's packages, services and paths. A host with no or an
// unknown flavor is bad input: the error names it.
func Specs(inv *inventory.Inventory) ([]*Host, error) {
	var hosts []*Host
	var errs []error
	headsDone := false
	for _, h := range inv.Hosts {
		name, _ := h.Vars["flavor"].(string)
		f, err := puppet.Get(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: vars.flavor: %w", h.Name, err))
			continue
		}
		s := spec{Certname: h.Name, Flavor: f, Socket: DefaultSocket}
		if v, ok := h.Vars["lb_socket"].(string); ok && v != "" {
			s.Socket = v
		}
		site := inv.SiteFor(h)
		for _, r := range roleOrder {
			// the database role is the site's database host's, whichever
			// group holds it (postgres, or the first PuppetDB)
			if r == RoleDatabase && site.Database == h.Name {
				s.Roles = append(s.Roles, r)
				continue
			}
			for _, g := range h.Groups {
				if groupRoles[g] == r && !s.has(r) {
					s.Roles = append(s.Roles, r)
				}
			}
		}
		if v, ok := h.Vars["lb_vip"].(string); ok && s.has(RoleLB) {
			s.VIP, _, _ = strings.Cut(v, "/")
		}
		s.Standby = s.has(RoleCA) && site.CAStandby != ""
		if s.has(RoleCompiler) && !headsDone {
			s.Heads, headsDone = true, true
		}
		addr := h.SSH.Address
		if addr == "" {
			addr = h.Name
		}
		roles := append([]string{}, s.Roles...)
		if roles == nil {
			roles = []string{}
		}
		hosts = append(hosts, &Host{Name: h.Name, Address: addr, Roles: roles, spec: s,
			Packages: []Package{}, Services: []ServiceState{}})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return hosts, nil
}

// probeSlots bounds the hosts read at once: a thousand SSH handshakes at
// once queue for the CPU here and on the network, and time out. A host's
// timeout starts when it gets its slot.
const probeSlots = 64

// Collect reads every host of inv in parallel (probeSlots at a time), one
// connection each, and judges the site. It never fails as a whole: what
// could not be read is in the rows.
func Collect(ctx context.Context, inv *inventory.Inventory, o Options) (*Site, error) {
	hosts, err := Specs(inv)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Dial == nil {
		o.Dial = transport.Dial
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	start := time.Now()
	byName := map[string]*inventory.Host{}
	for _, h := range inv.Hosts {
		byName[h.Name] = h
	}
	notStarted := fanout.Each(ctx, hosts, probeSlots, func(ctx context.Context, h *Host) error {
		probe(ctx, h, byName[h.Name].SSH, o)
		return nil
	})
	for i, err := range notStarted {
		if err != nil { // interrupted before its turn: read as a probe that could not dial
			hosts[i].Error = dialError(ctx, err)
		}
	}
	site := Judge(hosts, o.Now(), o.Horizon)
	site.WallMS = time.Since(start).Milliseconds()
	return site, nil
}

// probe runs h's script over one connection and fills the row.
func probe(ctx context.Context, h *Host, cfg transport.Config, o Options) {
	t0 := time.Now()
	defer func() { h.Elapsed = time.Since(t0).Milliseconds() }()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := o.Dial(ctx, cfg)
	if err != nil {
		h.Error = dialError(ctx, err)
		return
	}
	defer conn.Close()
	res, err := conn.Run(ctx, transport.Cmd{Command: h.spec.script(), Sudo: true, MaxOutput: MaxAnswer})
	// bounded here too, for a Conn that does not honour MaxOutput
	tooMuch := res.Truncated || len(res.Stdout) > MaxAnswer || len(res.Stderr) > MaxAnswer
	res.Stdout, res.Stderr = res.Stdout[:min(len(res.Stdout), MaxAnswer)], res.Stderr[:min(len(res.Stderr), MaxAnswer)]
	h.secs = splitSections(res.Stdout)
	switch {
	case tooMuch:
		h.Error = fmt.Sprintf("sent too much: more than %d MiB of probe output (the rest was dropped)", MaxAnswer>>20)
	case err != nil && ctx.Err() != nil:
		h.Error = fmt.Sprintf("timeout after %s", o.Timeout)
	case err != nil:
		h.Error = oneLine(err.Error())
	case res.ExitCode != 0 && len(h.secs) == 0:
		h.Error = fmt.Sprintf("probe script: exit %d: %s", res.ExitCode, firstLine(res.Stderr))
	}
	fill(h)
}

func dialError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "unreachable: timeout"
	}
	return "unreachable: " + oneLine(err.Error())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(firstLine(s)), " ")
	return s
}

// maskPassword masks remote's URL password wherever it appears in s (git's
// own messages may quote it, or the URL cut where it does not parse).
func maskPassword(s, remote string) string {
	if p, ok := secret.URLPassword(remote); ok {
		s = strings.ReplaceAll(s, p, secret.Mask)
	}
	return s
}
