package runner

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/troupe/troupe/internal/fanout"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/transport"
)

// handshakeSlots bounds the connections being set up at once, whatever
// --concurrency is. A handshake costs CPU on both ends; a thousand at once
// on a small machine (or a jump host) each take so long that some miss
// connect_timeout though nothing is wrong. A host's connect_timeout starts
// when its slot is free (transport.Dial starts it), so waiting in this
// queue never fails a host. 64 keeps a fleet across a slow network fed
// (a handshake there is mostly round trips).
var handshakeSlots = 64

// pool holds the one connection per host that the whole run shares.
type pool struct {
	dial       func(context.Context, transport.Config) (transport.Conn, error)
	red        *secret.Redactor
	handshakes chan struct{} // see handshakeSlots
	mu         sync.Mutex
	conns      map[string]transport.Conn
	warnings   []string
}

func newPool(dial func(context.Context, transport.Config) (transport.Conn, error), red *secret.Redactor) *pool {
	return &pool{dial: dial, red: red, conns: map[string]transport.Conn{}, handshakes: make(chan struct{}, handshakeSlots)}
}

// connect dials every host in parallel, before any step runs, so an
// unreachable host or an unknown host key stops the run before it changes
// anything. label names a host in the message (a peer with the step that
// needs it); by default its name. then, when not nil, is called with each
// host as soon as it is connected (the lock: one pass over the fleet).
func (p *pool) connect(ctx context.Context, hosts []*inventory.Host, limit int, label map[string]string, then func(*inventory.Host, transport.Conn)) error {
	for _, h := range hosts {
		if h.SSH.HostKeyCheck == "off" {
			p.warnings = append(p.warnings, fmt.Sprintf("%s: host key checking is OFF: anyone on the path can impersonate this host", h.Name))
		}
	}
	dialled := fanout.Each(ctx, hosts, limit, func(ctx context.Context, h *inventory.Host) error {
		c, err := p.get(ctx, h)
		if err == nil && then != nil {
			then(h, c)
		}
		return err
	})
	errs := map[string]error{}
	for i, err := range dialled {
		if err != nil {
			errs[hosts[i].Name] = err
		}
	}
	if len(errs) == 0 {
		return nil
	}
	names := make([]string, 0, len(errs))
	for n := range errs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "cannot reach %d of %d hosts; nothing was changed:", len(errs), len(hosts))
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %s: %v", labelOf(label, n), errs[n])
	}
	return fmt.Errorf("%s", p.red.String(b.String()))
}

// get returns the host's connection, dialling it the first time.
func (p *pool) get(ctx context.Context, h *inventory.Host) (transport.Conn, error) {
	p.mu.Lock()
	c, ok := p.conns[h.Name]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := p.dialInTurn(ctx, h.SSH)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.conns[h.Name]; ok { // lost a race with another dial
		c.Close()
		return old, nil
	}
	p.conns[h.Name] = c
	return c, nil
}

// dialInTurn dials once a handshake slot is free (see handshakeSlots).
func (p *pool) dialInTurn(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
	select {
	case p.handshakes <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("host %s: %w", cfg.Host, ctx.Err())
	}
	defer func() { <-p.handshakes }()
	return p.dial(ctx, cfg)
}

// labelOf is how label names host n in a message.
func labelOf(label map[string]string, n string) string {
	if l, ok := label[n]; ok {
		return l
	}
	return n
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
