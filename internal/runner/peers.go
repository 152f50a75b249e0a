package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/step"
	"github.com/troupe/troupe/internal/transport"
)

// Peers are the hosts a plan acts on besides its targets: the hosts of
// delegate_to, and those its actions name (step.PeerUser: the load
// balancers of lb_server, the CA of puppet_cert). The runner names them
// before the first step, in the scope each target will have, and connects,
// checks and locks them with the targets, so a missing load balancer or a
// CA another run holds stops the run before it changes anything. --limit
// narrows the targets, never their peers. A peer is named for every target
// of its step, whatever the step's when will say.
//
// Before the run no step has registered anything: a peer named from
// .registered (directly, or through a role var that reads it) is known only
// when its step runs. Those steps are listed in Later; the runner reaches
// their peers then, connecting, checking and locking each on first use.
type Peers struct {
	Hosts []Peer   // in the order the plan first needs them
	Later []string // the steps whose peers are known only when they run, and why
}

// Peer is one host and what needs it.
type Peer struct {
	Host *inventory.Host
	By   []string // "lb_server in step leave/drain", in plan order
}

// String names the host and the first step that needs it.
func (p Peer) String() string {
	s := p.Host.Name + " (" + p.By[0]
	if n := len(p.By) - 1; n > 0 {
		s += fmt.Sprintf(", and %d more", n)
	}
	return s + ")"
}

// FindPeers names the peers of o's plan in o's inventory, within o.Limit
// and from o.StartAt, without connecting anywhere: what `plan validate -i`
// shows. o.Params nil means the params are not known (none were given): a
// peer named from .params is then known only at run time too.
func FindPeers(o Options) (*Peers, error) {
	r := &run{o: o, registered: map[string]map[string]any{}, started: o.StartAt == ""}
	if !r.started {
		leaf, err := o.Plan.StartLeaf(o.StartAt)
		if err != nil {
			return nil, err
		}
		if err := o.Plan.CheckStartAt(leaf); err != nil {
			return nil, err
		}
		r.startAt = leaf
	}
	return r.peers()
}

// peers names the run's peers; an error lists every peer that cannot be
// named (an empty group, a host not in the inventory, a template error).
func (r *run) peers() (*Peers, error) {
	f := &peerFinder{r: r, unknown: []string{"registered"}, started: r.started, found: &Peers{}, index: map[string]int{}, seen: map[string]bool{}}
	if r.o.Params == nil {
		f.unknown = append(f.unknown, "params")
	}
	f.steps(r.o.Plan.Steps, nil, scopeLayer{params: r.o.Params})
	if len(f.errs) > 0 {
		return f.found, errors.New(strings.Join(f.errs, "\n"))
	}
	return f.found, nil
}

type peerFinder struct {
	r       *run
	unknown []string // scope keys not known before the run
	started bool     // --start-at reached
	found   *Peers
	index   map[string]int  // host name → its place in found.Hosts
	seen    map[string]bool // what was noted already
	errs    []string
}

// steps walks the plan as the run will (see one): the same targets within
// --limit, the same scope layers and delegates, from --start-at on.
func (f *peerFinder) steps(steps []*plan.Step, inherited []*inventory.Host, l scopeLayer) {
	for _, s := range steps {
		targets := inherited
		if s.Targets != "" {
			if strings.Contains(s.Targets, "{{") && slices.Contains(f.unknown, "params") {
				// plan validate -i without params: a step whose targets
				// come from them is known only at run time.
				f.note(&f.found.Later, fmt.Sprintf("step %s: its targets are named from .params: known when the plan runs", s.ID))
				continue
			}
			var err error
			if targets, err = f.r.targets(s, l.params); err != nil {
				f.note(&f.errs, fmt.Sprintf("step %s: %v", s.ID, err))
				continue
			}
		}
		if isBlock(s) && (passThrough(s, inherited) || len(targets) > 0) {
			inner, err := f.r.enter(l, s)
			if err != nil {
				if slices.Contains(f.unknown, "params") {
					f.note(&f.found.Later, fmt.Sprintf("step %s: its params are rendered from .params: known when the plan runs", s.ID))
				} else {
					f.note(&f.errs, err.Error())
				}
				continue
			}
			if passThrough(s, inherited) {
				targets = nil
			}
			f.steps(s.Steps, targets, inner)
			continue
		}
		if len(targets) == 0 {
			continue
		}
		if !f.started {
			if s.ID != f.r.startAt {
				continue
			}
			f.started = true
		}
		f.leaf(s, targets, l)
	}
}

// leaf names the peers of one action step, for each of its targets.
func (f *peerFinder) leaf(s *plan.Step, targets []*inventory.Host, l scopeLayer) {
	sel := s.DelegateTo
	if sel == "" {
		sel = l.delegate
	}
	named, _ := s.Action.(step.PeerUser)
	if sel == "" && named == nil {
		return
	}
	_, groups := f.r.groupData()
	for _, h := range targets {
		data, err := f.r.scope(h, l, f.unknown)
		if sel != "" {
			f.add(s, "delegate_to", err, func() ([]*inventory.Host, error) { return f.r.delegateHosts(sel, data) })
		}
		if named != nil {
			f.add(s, s.Kind, err, func() ([]*inventory.Host, error) {
				names, err := named.Peers(step.Scope{Data: data, Groups: groups})
				if err != nil {
					return nil, err
				}
				return f.r.inventoryHosts(names)
			})
		}
	}
}

// add records the hosts what (delegate_to, or the action's kind) needs in
// step s; scopeErr is a failure to build the target's scope.
func (f *peerFinder) add(s *plan.Step, what string, scopeErr error, hosts func() ([]*inventory.Host, error)) {
	err := scopeErr
	var hs []*inventory.Host
	if err == nil {
		hs, err = hosts()
	}
	if err != nil {
		if key := f.notKnownYet(err); key != "" {
			f.note(&f.found.Later, fmt.Sprintf("step %s: the hosts of %s are named from .%s: reached when the step runs", s.ID, what, key))
		} else {
			f.note(&f.errs, fmt.Sprintf("step %s: %s: %s", s.ID, what, oneLine(err.Error())))
		}
		return
	}
	by := what + " in step " + s.ID
	for _, h := range hs {
		if f.seen[h.Name+"\x00"+by] {
			continue
		}
		f.seen[h.Name+"\x00"+by] = true
		i, ok := f.index[h.Name]
		if !ok {
			i = len(f.found.Hosts)
			f.index[h.Name] = i
			f.found.Hosts = append(f.found.Hosts, Peer{Host: h})
		}
		f.found.Hosts[i].By = append(f.found.Hosts[i].By, by)
	}
}

// notKnownYet is the scope key whose absence made err, or "": text/template
// (missingkey=error) says "map has no entry for key" of a key the scope
// before the run leaves out.
func (f *peerFinder) notKnownYet(err error) string {
	for _, k := range f.unknown {
		if strings.Contains(err.Error(), fmt.Sprintf("map has no entry for key %q", k)) {
			return k
		}
	}
	return ""
}

// note adds msg to list once.
func (f *peerFinder) note(list *[]string, msg string) {
	if !f.seen[msg] {
		f.seen[msg] = true
		*list = append(*list, msg)
	}
}

// inventoryHosts resolves host names (or aliases) an action gave.
func (r *run) inventoryHosts(names []string) ([]*inventory.Host, error) {
	out := make([]*inventory.Host, 0, len(names))
	for _, n := range names {
		h := r.o.Inventory.Host(n)
		if h == nil {
			return nil, fmt.Errorf("no host %q in the inventory", n)
		}
		out = append(out, h)
	}
	return out, nil
}

// withPeers is the targets, then the peers that are not targets: every
// host the run connects to and locks before the first step, each once. label
// names each peer in messages with the step that needs it.
func withPeers(targets []*inventory.Host, p *Peers) (all []*inventory.Host, label map[string]string) {
	all = append(all, targets...)
	label = map[string]string{}
	in := map[string]bool{}
	for _, h := range targets {
		in[h.Name] = true
	}
	for _, peer := range p.Hosts {
		label[peer.Host.Name] = peer.String()
		if !in[peer.Host.Name] {
			in[peer.Host.Name] = true
			all = append(all, peer.Host)
		}
	}
	return all, label
}

// conn is on's connection for step s. Targets and the peers named before
// the run were connected, checked and locked before the first step; a host
// named only when its step runs is reached now (see reachLate).
func (r *run) conn(ctx context.Context, s *plan.Step, on *inventory.Host) (transport.Conn, error) {
	r.lateMu.Lock()
	ready := r.ready[on.Name]
	r.lateMu.Unlock()
	if ready {
		return r.pool.get(ctx, on)
	}
	return r.reachLate(ctx, s, on)
}

// reachLate connects, checks and locks a host that could not be named
// before the run (a peer named from .registered), once, as the run did
// its targets; a refusal is an error of the step that needs it.
func (r *run) reachLate(ctx context.Context, s *plan.Step, on *inventory.Host) (transport.Conn, error) {
	r.lateMu.Lock()
	defer r.lateMu.Unlock()
	if r.ready[on.Name] {
		return r.pool.get(ctx, on)
	}
	if r.o.CheckAuth != nil {
		if err := r.o.CheckAuth(on.SSH); err != nil {
			return nil, err
		}
	}
	c, err := r.pool.get(ctx, on)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", on.Name, err)
	}
	if r.locks != nil {
		if err := r.locks.add(ctx, on, c); err != nil {
			return nil, err
		}
	}
	r.ready[on.Name] = true
	did := "connected"
	if r.locks != nil {
		did = "connected and locked"
	}
	text := fmt.Sprintf("%s only when step %s ran: its name was not known before the run", did, s.ID)
	if on.SSH.HostKeyCheck == "off" {
		text += "; host key checking is OFF: anyone on the path can impersonate this host"
	}
	r.emit(report.Event{Kind: report.Warning, Step: s.ID, Host: on.Name, Text: text})
	return c, nil
}
