package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
)

// A plan's steps are walked one way, by walker, for every purpose: to run
// them (execution), to name the hosts the run targets (targetSet) and to
// name their peers before the run (peerFinder). What the run connects and
// locks before its first step is then what its steps meet.
//
// A step's targets are its own selector (within --limit, rendered with the
// params in force) or else its enclosing block's batch. A block's steps see
// the layer enter puts on the scope: a sub-plan's params, role defaults and
// vars, the block's delegate_to. A block without targets at the top level
// passes through: its steps choose their own. An action's delegates are
// its own delegate_to's hosts, else its nearest block's.

// walker walks steps in order and hands each, its targets selected, to a
// visitor; the visitor walks a block's steps (block) over the batches it
// chooses.
type walker struct {
	r *run
	// unknown are the scope keys not known yet: none in a run; before it,
	// .registered (and .params when none were given). They are left out of
	// the scope, and a template that fails reading one is a *notKnownYet.
	unknown []string
	started bool // --start-at reached (true without one)
}

// visitor is what one walk does at each step.
type visitor interface {
	// step is a step with its targets selected.
	step(ctx context.Context, at stepAt) error
	// unresolved is a step whose targets cannot be selected (err names
	// the step): an error stops the walk, nil goes on to the next step.
	unresolved(s *plan.Step, err error) error
}

// stepAt is a step where the walk reached it.
type stepAt struct {
	*plan.Step
	inherited []*inventory.Host // the enclosing block's batch; nil at the top level and in a pass-through block
	targets   []*inventory.Host // its own, else inherited
	layer     scopeLayer        // the scope it is in
}

// walker starts a walk of this run's plan.
func (r *run) walker(unknown ...string) *walker {
	return &walker{r: r, unknown: unknown, started: r.startAt == ""}
}

// steps walks steps in order; inherited and l are the enclosing block's
// batch and layer.
func (w *walker) steps(ctx context.Context, steps []*plan.Step, inherited []*inventory.Host, l scopeLayer, v visitor) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		targets, err := w.targets(s, inherited, l)
		if err != nil {
			if err := v.unresolved(s, err); err != nil {
				return err
			}
			continue
		}
		if err := v.step(ctx, stepAt{Step: s, inherited: inherited, targets: targets, layer: l}); err != nil {
			return err
		}
	}
	return nil
}

// block walks block at's steps over batch, in inner (the layer inside it:
// see inner), with v.
func (w *walker) block(ctx context.Context, at stepAt, inner scopeLayer, batch []*inventory.Host, v visitor) error {
	return w.steps(ctx, at.Steps, batch, inner, v)
}

// targets are step s's own targets, else inherited. A selector rendered
// from params that are not known (plan validate -i without params) is
// not known yet.
func (w *walker) targets(s *plan.Step, inherited []*inventory.Host, l scopeLayer) ([]*inventory.Host, error) {
	if s.Targets == "" {
		return inherited, nil
	}
	if strings.Contains(s.Targets, "{{") && w.paramsUnknown(l) {
		return nil, fmt.Errorf("step %s: %w", s.ID, &notKnownYet{key: "params"})
	}
	hs, err := w.r.targets(s, l.params)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s.ID, err)
	}
	return hs, nil
}

// inner is the layer inside block at (see enter). A sub-plan's params
// rendered from params that are not known are not known yet.
func (w *walker) inner(at stepAt) (scopeLayer, error) {
	inner, err := w.r.enter(at.layer, at.Step)
	if err != nil && w.paramsUnknown(at.layer) {
		return inner, &notKnownYet{key: "params", err: err}
	}
	return inner, err
}

// paramsUnknown: l holds no params, and they are not known (FindPeers
// without params); a sub-plan that gives its own makes them known.
func (w *walker) paramsUnknown(l scopeLayer) bool {
	return l.params == nil && slices.Contains(w.unknown, "params")
}

// passThrough: a block without targets, outside any block that gave it
// some, and without the controls that need its hosts (when, serial), runs
// its steps on the targets each of them names.
func (at stepAt) passThrough() bool {
	return isBlock(at.Step) && at.Targets == "" && at.inherited == nil && at.When == "" && at.Serial == ""
}

// reached says whether --start-at is reached at action step s: the steps
// before it are skipped.
func (w *walker) reached(s *plan.Step) bool {
	if !w.started && s.ID == w.r.startAt {
		w.started = true
	}
	return w.started
}

// scope is h's template scope in layer l, without the keys not known yet.
func (w *walker) scope(h *inventory.Host, l scopeLayer) (map[string]any, error) {
	data, err := w.r.scope(h, l, w.unknown)
	return data, w.known(err)
}

// known is err, or a *notKnownYet wrapping it when err is a template that
// failed reading a key left out of the scope as not known yet.
func (w *walker) known(err error) error {
	var absent *render.AbsentError
	if errors.As(err, &absent) && slices.Contains(w.unknown, absent.Key) {
		return &notKnownYet{key: absent.Key, err: err}
	}
	return err
}

// notKnownYet is a value that reads scope key .key, which is not known
// before the run.
type notKnownYet struct {
	key string
	err error // the template's failure, when one rendered
}

func (e *notKnownYet) Error() string {
	if e.err == nil {
		return "." + e.key + " is not known before the run"
	}
	return e.err.Error()
}

func (e *notKnownYet) Unwrap() error { return e.err }

// delegateTo is the delegate_to in force at step s in layer l: its own,
// else its nearest block's; "" for none.
func delegateTo(s *plan.Step, l scopeLayer) string {
	if s.DelegateTo != "" {
		return s.DelegateTo
	}
	return l.delegate
}

// delegates are the hosts the action runs on for target h: h itself, or
// the hosts of the step's (or its block's) delegate_to. Delegates are
// reached as peers: --limit does not apply to them.
func (r *run) delegates(s *plan.Step, h *inventory.Host, l scopeLayer, data map[string]any) ([]*inventory.Host, error) {
	sel := delegateTo(s, l)
	if sel == "" {
		return []*inventory.Host{h}, nil
	}
	hs, err := r.delegateHosts(sel, data)
	if err != nil {
		return nil, fmt.Errorf("delegate_to: %w", err)
	}
	return hs, nil
}

// delegateHosts renders a delegate_to selector in a target's scope and
// selects its hosts, at least one, in the whole inventory.
func (r *run) delegateHosts(sel string, data map[string]any) ([]*inventory.Host, error) {
	sel, err := render.String(sel, data)
	if err != nil {
		return nil, err
	}
	hs, err := r.o.Inventory.Select(sel)
	if err == nil && len(hs) == 0 {
		err = fmt.Errorf("%q selects no host", sel)
	}
	return hs, err
}

// targetSet is the walk that names every host some step may target,
// within --limit, each step's targets selected with the params in force
// there (a sub-plan's own), whatever --start-at and the whens will say; and
// of them the hosts that may be down: those only ignore_unreachable steps
// act on (see mayBeDown), connected when one reaches them.
type targetSet struct {
	w      *walker
	seen   map[string]bool
	needed map[string]bool // targeted by a step that does not ignore_unreachable
	hosts  []*inventory.Host
}

func (t *targetSet) unresolved(_ *plan.Step, err error) error { return err }

func (t *targetSet) step(ctx context.Context, at stepAt) error {
	if at.Targets != "" {
		lax := mayBeDown(at.Step)
		for _, h := range at.targets {
			if !t.seen[h.Name] {
				t.seen[h.Name] = true
				t.hosts = append(t.hosts, h)
			}
			if !lax {
				t.needed[h.Name] = true
			}
		}
	}
	if !isBlock(at.Step) {
		return nil
	}
	inner, err := t.w.inner(at)
	if err != nil {
		return err
	}
	return t.w.block(ctx, at, inner, at.targets, t)
}

// mayBeDown: the action steps that run on s's own targets (s itself, or
// the steps of its block that name no targets of their own, at any depth)
// all say ignore_unreachable, and there is one. A block none of whose
// steps runs on its targets keeps them connected before the run, as ever.
func mayBeDown(s *plan.Step) bool {
	n, lax := actingOn(s)
	return n > 0 && lax
}

// actingOn counts the action steps that run on s's own targets, and says
// whether every one of them ignores unreachable hosts.
func actingOn(s *plan.Step) (n int, lax bool) {
	if !isBlock(s) {
		return 1, s.IgnoreUnreachable
	}
	lax = true
	for _, c := range s.Steps {
		if c.Targets != "" {
			continue // its own targets, its own decision
		}
		cn, cl := actingOn(c)
		n, lax = n+cn, lax && cl
	}
	return n, lax
}

// allHosts is every host some step may target (see targetSet), and the
// names of those of them that may be down.
func (r *run) allHosts() ([]*inventory.Host, map[string]bool, error) {
	t := &targetSet{w: r.walker(), seen: map[string]bool{}, needed: map[string]bool{}}
	err := t.w.steps(context.Background(), r.o.Plan.Steps, nil, scopeLayer{params: r.o.Params}, t)
	lax := map[string]bool{}
	for _, h := range t.hosts {
		if !t.needed[h.Name] {
			lax[h.Name] = true
		}
	}
	return t.hosts, lax, err
}
