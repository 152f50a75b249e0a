package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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
	// MayBeDown: only the delegate_to of ignore_unreachable steps needs
	// it. Unless the run targets it too, it is connected when such a step
	// reaches it, not before the run.
	MayBeDown bool
}

// String names the host and the first step that needs it.
func (p Peer) String() string {
	s := p.Host.Name + " (" + p.By[0]
	if n := len(p.By) - 1; n > 0 {
		s += fmt.Sprintf(", and %d more", n)
	}
	s += ")"
	if p.MayBeDown {
		s += "; may be down (ignore_unreachable): connected when its step reaches it"
	}
	return s
}

// FindPeers names the peers of o's plan in o's inventory, within o.Limit
// and from o.StartAt, without connecting anywhere: what `plan validate -i`
// shows. o.Params nil means the params are not known (none were given): a
// peer named from .params is then known only at run time too.
func FindPeers(o Options) (*Peers, error) {
	r := newRun(o)
	if o.StartAt != "" {
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
	unknown := []string{"registered"}
	if r.o.Params == nil {
		unknown = append(unknown, "params")
	}
	f := &peerFinder{w: r.walker(unknown...), found: &Peers{}, index: map[string]int{}, seen: map[string]bool{}}
	f.w.steps(context.Background(), r.o.Plan.Steps, nil, scopeLayer{params: r.o.Params}, f)
	if len(f.errs) > 0 {
		return f.found, errors.New(strings.Join(f.errs, "\n"))
	}
	return f.found, nil
}

// peerFinder is the walk that names peers: the run's walk (the same
// targets within --limit, the same scope layers and delegates, from
// --start-at on) with every target at once, whatever the whens will say.
type peerFinder struct {
	w     *walker
	found *Peers
	index map[string]int  // host name → its place in found.Hosts
	seen  map[string]bool // what was noted already
	errs  []string
}

// unresolved notes a step whose targets cannot be selected, and goes on.
func (f *peerFinder) unresolved(s *plan.Step, err error) error {
	if isNotKnownYet(err) {
		f.note(&f.found.Later, fmt.Sprintf("step %s: its targets are named from .params: known when the plan runs", s.ID))
	} else {
		f.note(&f.errs, err.Error())
	}
	return nil
}

// step walks into a block with targets (all of them, one batch), or names
// the peers of an action step from --start-at on.
func (f *peerFinder) step(ctx context.Context, at stepAt) error {
	if isBlock(at.Step) {
		if !at.passThrough() && len(at.targets) == 0 {
			return nil
		}
		inner, err := f.w.inner(at)
		switch {
		case isNotKnownYet(err):
			f.note(&f.found.Later, fmt.Sprintf("step %s: its params are rendered from .params: known when the plan runs", at.ID))
		case err != nil:
			f.note(&f.errs, err.Error())
		default:
			targets := at.targets
			if at.When != "" {
				if targets = f.mayRun(at.Step, targets, inner); len(targets) == 0 {
					return nil
				}
			}
			return f.w.block(ctx, at, inner, targets, f)
		}
		return nil
	}
	if len(at.targets) > 0 && f.w.reached(at.Step) {
		f.leaf(at)
	}
	return nil
}

// mayRun keeps the targets for which block s's when is true, or not known
// before the run (it reads a register): a block whose when is false from
// what is known already (.site, .vars, .params) reaches no peers, as a
// standby CA's steps on a site without one.
func (f *peerFinder) mayRun(s *plan.Step, hosts []*inventory.Host, l scopeLayer) []*inventory.Host {
	var keep []*inventory.Host
	for _, h := range hosts {
		data, err := f.w.scope(h, l)
		ok := true
		if err == nil {
			ok, err = when(s, data)
		}
		if err != nil || ok {
			keep = append(keep, h)
		}
	}
	return keep
}

// leaf names the peers of one action step, for each of its targets.
func (f *peerFinder) leaf(at stepAt) {
	s := at.Step
	sel := delegateTo(s, at.layer)
	named, _ := s.Action.(step.PeerUser)
	if sel == "" && named == nil {
		return
	}
	_, groups := f.w.r.groupData()
	for _, h := range at.targets {
		data, err := f.w.scope(h, at.layer)
		if sel != "" {
			// the hosts the action runs on: they may be down as its target may
			f.add(s, "delegate_to", s.IgnoreUnreachable, err, func() ([]*inventory.Host, error) { return f.w.r.delegateHosts(sel, data) })
		}
		if named != nil {
			// hosts the action itself reaches: connected before the run, always
			f.add(s, s.Kind, false, err, func() ([]*inventory.Host, error) {
				names, err := named.Peers(step.Scope{Data: data, Groups: groups})
				if err != nil {
					return nil, err
				}
				return f.w.r.inventoryHosts(names)
			})
		}
	}
}

// add records the hosts what (delegate_to, or the action's kind) needs in
// step s; lax: they may be down (see Peer.MayBeDown); scopeErr is a
// failure to build the target's scope.
func (f *peerFinder) add(s *plan.Step, what string, lax bool, scopeErr error, hosts func() ([]*inventory.Host, error)) {
	err := scopeErr
	var hs []*inventory.Host
	if err == nil {
		hs, err = hosts()
	}
	var later *notKnownYet
	switch {
	case errors.As(f.w.known(err), &later):
		f.note(&f.found.Later, fmt.Sprintf("step %s: the hosts of %s are named from .%s: reached when the step runs", s.ID, what, later.key))
		return
	case err != nil:
		f.note(&f.errs, fmt.Sprintf("step %s: %s: %s", s.ID, what, oneLine(err.Error())))
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
			f.found.Hosts = append(f.found.Hosts, Peer{Host: h, MayBeDown: true})
		}
		f.found.Hosts[i].By = append(f.found.Hosts[i].By, by)
		f.found.Hosts[i].MayBeDown = f.found.Hosts[i].MayBeDown && lax
	}
}

// isNotKnownYet: err is a value not known before the run.
func isNotKnownYet(err error) bool {
	var later *notKnownYet
	return errors.As(err, &later)
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

// withPeers is the hosts the run connects to and locks before the first
// step, each once: the targets, then the peers that are not targets (now);
// and those it connects when a step reaches them (later): targets only
// ignore_unreachable steps act on (lax), and peers that may be down, that
// nothing in now needs. label names each peer in messages with the step
// that needs it.
func withPeers(targets []*inventory.Host, lax map[string]bool, p *Peers) (now, later []*inventory.Host, label map[string]string) {
	label = map[string]string{}
	in := map[string]bool{}
	add := func(list *[]*inventory.Host, h *inventory.Host) {
		if !in[h.Name] {
			in[h.Name] = true
			*list = append(*list, h)
		}
	}
	for _, h := range targets {
		if !lax[h.Name] {
			add(&now, h)
		}
	}
	for _, peer := range p.Hosts {
		label[peer.Host.Name] = peer.String()
		if !peer.MayBeDown {
			add(&now, peer.Host)
		}
	}
	for _, h := range targets {
		add(&later, h)
	}
	for _, peer := range p.Hosts {
		add(&later, peer.Host)
	}
	return now, later, label
}

// conn is on's connection for step s. Targets and the peers named before
// the run were connected, checked and locked before the first step; a host
// named only when its step runs, or one that may be down, is reached now
// (see reachLate); one found unreachable is not dialled again.
func (r *run) conn(ctx context.Context, s *plan.Step, on *inventory.Host) (transport.Conn, error) {
	r.lateMu.Lock()
	ready, down := r.ready[on.Name], r.down[on.Name]
	r.lateMu.Unlock()
	switch {
	case ready:
		return r.pool.get(ctx, on)
	case down != nil:
		return nil, down
	}
	return r.reachLate(ctx, s, on)
}

// reachLate connects, checks and locks a host that was not before the run
// (a peer named from .registered, a host that may be down), once, as the
// run did its targets; a refusal is an error of the step that needs it.
// A host an ignore_unreachable step cannot connect to is remembered as
// unreachable, with its error, for the rest of the run. Hosts are reached
// side by side, each once.
func (r *run) reachLate(ctx context.Context, s *plan.Step, on *inventory.Host) (transport.Conn, error) {
	defer r.reaching(on.Name)()
	r.lateMu.Lock()
	ready, down := r.ready[on.Name], r.down[on.Name]
	r.lateMu.Unlock()
	switch {
	case ready:
		return r.pool.get(ctx, on)
	case down != nil:
		return nil, down
	}
	if r.o.CheckAuth != nil {
		if err := r.o.CheckAuth(on.SSH); err != nil {
			return nil, err
		}
	}
	c, err := r.pool.get(ctx, on)
	if err != nil {
		err = fmt.Errorf("cannot reach %s: %w", on.Name, err)
		if s.IgnoreUnreachable && isUnreachable(err) {
			r.lateMu.Lock()
			r.down[on.Name] = err
			r.lateMu.Unlock()
		}
		return nil, err
	}
	if r.locks != nil {
		if err := r.locks.add(ctx, on, c); err != nil {
			return nil, err
		}
	}
	r.lateMu.Lock()
	r.ready[on.Name] = true
	r.lateMu.Unlock()
	r.emit(r.reachedLate(s, on))
	return c, nil
}

// reaching waits until no other step is reaching host name, and returns
// what ends this one's turn.
func (r *run) reaching(name string) (done func()) {
	r.lateMu.Lock()
	m := r.turns[name]
	if m == nil {
		m = &sync.Mutex{}
		r.turns[name] = m
	}
	r.lateMu.Unlock()
	m.Lock()
	return m.Unlock
}

// reachedLate is the event that says host on was connected (and locked)
// only when step s ran: a warning for a peer whose name was not known
// before the run, a debug line for a host that may be down (the plan said
// so), a warning for either when its host key is not checked.
func (r *run) reachedLate(s *plan.Step, on *inventory.Host) report.Event {
	did := "connected"
	if r.locks != nil {
		did = "connected and locked"
	}
	e := report.Event{Kind: report.Warning, Step: s.ID, Host: on.Name,
		Text: fmt.Sprintf("%s only when step %s ran: its name was not known before the run", did, s.ID)}
	if r.lax[on.Name] {
		e.Kind, e.Text = report.Debug, fmt.Sprintf("%s when step %s reached it: it may be down (ignore_unreachable), so it was not before the run", did, s.ID)
	}
	if on.SSH.HostKeyCheck == "off" {
		e.Kind, e.Text = report.Warning, e.Text+"; host key checking is OFF: anyone on the path can impersonate this host"
	}
	return e
}

// isUnreachable: err is a failure to connect at all (transport.ErrUnreachable),
// not a host that answered and refused.
func isUnreachable(err error) bool { return errors.Is(err, transport.ErrUnreachable) }
