// Package runner executes a checked plan against an inventory: it connects
// once per host and locks every host (its targets and their peers: see
// Peers; a host only ignore_unreachable steps act on is connected when one
// reaches it, and its steps are skipped while it is down), walks the steps
// in order (each step a barrier across its targets, serial batches when
// asked), applies the step controls, and reports every host's outcome.
// Every result goes to a journal so an interrupted run can resume where it
// stopped.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/step"
	"github.com/troupe/troupe/internal/transport"
)

// Options is everything one run needs.
type Options struct {
	Plan        *plan.Plan
	Inventory   *inventory.Inventory
	Params      map[string]any // bound and typed (plan.BindParams)
	Limit       string         // inventory selector intersected with every step's targets
	Noop        bool
	Concurrency int    // hosts in parallel; default 100
	Resume      bool   // skip, per host, what the previous run completed
	StartAt     string // skip every step before this id
	StateDir    string // journal and lock bookkeeping
	Files       fs.FS  // plans' content for template/upload/script sources
	Reporter    report.Reporter
	Redactor    *secret.Redactor
	// Dial opens a host's connection; transport.Dial unless a test swaps it.
	Dial func(ctx context.Context, cfg transport.Config) (transport.Conn, error)
	// CheckAuth checks a host's credentials before any host is dialled;
	// transport.CheckAuth with transport.Dial, none with a swapped Dial.
	CheckAuth func(cfg transport.Config) error
	// Lock is the host lock's heartbeat period and takeover age (zero:
	// the defaults, 10s and 45s).
	Lock LockTimes
	// Flavor is a host's Puppet flavor (nil: none), given to actions typed
	// and to templates as .flavor; without it no host has a flavor.
	Flavor func(h *inventory.Host) (*puppet.Flavor, error)
}

// Summary is what a run did.
type Summary struct {
	Counts   map[report.Status]int
	Failed   map[string]string // host → "step: error"
	Duration time.Duration
	Journal  string
}

// ErrFailed is returned (wrapped) when any host failed.
var ErrFailed = errors.New("run failed")

// InputError is an option refused before any connection (unknown
// --start-at id, bad --limit, nothing to --resume, a peer that cannot be
// named): nothing ran.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Run executes the plan. It returns an error wrapping ErrFailed when a step
// failed beyond its controls, ctx.Err() when interrupted, or a setup error
// (unreachable host, held lock) before anything changed.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 100
	}
	if o.Dial == nil {
		o.Dial, o.CheckAuth = transport.Dial, transport.CheckAuth
	}
	r := newRun(o)
	start := time.Now()
	sum, err := r.execute(ctx)
	sum.Duration = time.Since(start)
	ev := report.Event{Kind: report.RunEnd, Plan: o.Plan.Name, Status: report.Unchanged, Duration: sum.Duration}
	if err != nil {
		ev.Status, ev.Error = report.Failed, err.Error()
	}
	r.emit(ev)
	return sum, err
}

// newRun is o's run before its first step.
func newRun(o Options) *run {
	return &run{
		o:          o,
		failed:     map[string]string{},
		registered: map[string]map[string]any{},
		unapplied:  map[string]bool{},
		counts:     map[report.Status]int{},
		ready:      map[string]bool{},
		lax:        map[string]bool{},
		down:       map[string]error{},
		turns:      map[string]*sync.Mutex{},
		memo:       &step.Memo{},
	}
}

// run is the typed state of one run.
type run struct {
	o       Options
	pool    *pool
	journal *journal
	resume  map[string]map[string]done // host → step id → what the previous run recorded
	startAt string                     // the action step --start-at resolved to
	locks   *locks                     // the hosts this run holds; nil under --noop

	lateMu sync.Mutex
	ready  map[string]bool        // hosts connected and locked; the rest are reached late (reachLate)
	lax    map[string]bool        // hosts that may be down, not connected before the run (see withPeers); set before the first step
	down   map[string]error       // hosts an ignore_unreachable step could not connect to: why, for every later step
	turns  map[string]*sync.Mutex // one reachLate of a host at a time

	mu         sync.Mutex
	failed     map[string]string         // host → "step: error"; failed hosts leave the run
	registered map[string]map[string]any // host → register name → result
	counts     map[report.Status]int
	// unapplied: hosts this --noop run showed a change on that it did not
	// make, so a read of them now may find what that change would alter
	// (a program not installed yet, a service not started yet)
	unapplied map[string]bool

	groupsOnce sync.Once
	groups     map[string]any      // .groups, built once
	groupNames map[string][]string // the same as Exec.Groups

	memo *step.Memo // what the steps learned of the hosts, for this run only
}

func (r *run) emit(e report.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.o.Reporter.Emit(e)
}

func (r *run) execute(ctx context.Context) (*Summary, error) {
	sum := &Summary{Counts: r.counts, Failed: r.failed}
	if err := r.check(); err != nil {
		return sum, err
	}
	hosts, lax, err := r.allHosts()
	if err != nil {
		return sum, &InputError{err}
	}
	peers, err := r.peers()
	if err != nil {
		return sum, &InputError{fmt.Errorf("cannot name the hosts steps act on besides their targets; nothing was changed:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	reach, later, label := withPeers(hosts, lax, peers)
	// credentials are checked here, dialling nothing, for the hosts that
	// may be down too: a missing key is this machine's fault, not theirs
	if err := r.checkAuth(append(slices.Clone(reach), later...)); err != nil {
		return sum, err
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	r.emit(report.Event{Kind: report.RunStart, Plan: r.o.Plan.Name, Hosts: names})
	if len(hosts) == 0 {
		return sum, errors.New("no hosts selected: check the plan's targets and --limit")
	}
	if err := r.journal.open(r.o.Noop); err != nil {
		return sum, err
	}
	defer r.journal.close()
	sum.Journal = r.journal.path

	r.pool = newPool(r.o.Dial, r.o.Redactor)
	defer r.pool.closeAll()
	// Each host is locked as soon as it is connected; an unreachable host
	// or a refused lock releases the locks taken (nothing else was done).
	var lockNow func(*inventory.Host, transport.Conn)
	var locks *locks
	if !r.o.Noop {
		locks = newLocks(r.o.Plan.Name, r.o.Lock)
		lockNow = func(h *inventory.Host, c transport.Conn) { locks.take(ctx, h, c, label) }
	}
	err = r.pool.connect(ctx, reach, r.o.Concurrency, label, lockNow)
	if cerr := ctx.Err(); cerr != nil {
		err = cerr // interrupted: not a host's fault, nor another run's lock
	}
	if err != nil {
		if locks != nil {
			locks.release()
		}
		return sum, err
	}
	if locks != nil {
		if err := locks.settle(); err != nil {
			return sum, err
		}
		r.locks = locks
		defer r.locks.release()
	}
	for _, h := range reach {
		r.ready[h.Name] = true
	}
	for _, h := range later {
		r.lax[h.Name] = true
		r.emit(report.Event{Kind: report.Debug, Host: h.Name, Text: "may be down (ignore_unreachable): connected when a step reaches it"})
	}
	for _, w := range r.pool.warnings {
		r.emit(report.Event{Kind: report.Warning, Text: w})
	}
	for _, p := range peers.Hosts {
		r.emit(report.Event{Kind: report.Debug, Host: p.Host.Name, Text: "peer: " + strings.Join(p.By, ", ")})
	}
	for _, w := range peers.Later {
		r.emit(report.Event{Kind: report.Warning, Text: w})
	}

	w := r.walker()
	err = w.steps(ctx, r.o.Plan.Steps, nil, scopeLayer{params: r.o.Params}, execution{w: w})
	if err == nil && !w.started {
		// check found the step, so only targets or when kept it from running
		err = fmt.Errorf("--start-at %s: the run never reached it (no host was selected for it)", r.startAt)
	}
	if err == nil && len(r.failed) > 0 {
		err = fmt.Errorf("%w: %d host(s) failed within max_failures", ErrFailed, len(r.failed))
	}
	r.journal.end(err)
	return sum, err
}

// check refuses, before the journal is touched or any host dialled, the
// options that cannot work: a --limit that does not parse, a --start-at id
// the plan does not have, a --resume with nothing to resume.
func (r *run) check() error {
	if r.o.Limit != "" {
		if _, err := r.o.Inventory.Select(r.o.Limit); err != nil {
			return &InputError{fmt.Errorf("--limit: %w", err)}
		}
	}
	if r.o.StartAt != "" {
		leaf, err := r.o.Plan.StartLeaf(r.o.StartAt)
		if err != nil {
			return &InputError{fmt.Errorf("--start-at: %w", err)}
		}
		if err := r.o.Plan.CheckStartAt(leaf); err != nil {
			return &InputError{err}
		}
		r.startAt = leaf
	}
	j, err := loadJournal(r.o.StateDir, r.o.Plan.Name, r.o.Inventory.File, r.o.Redactor)
	if err != nil {
		return err
	}
	if w := j.setAside(r.o.Noop); w != "" {
		r.emit(report.Event{Kind: report.Warning, Text: w})
	}
	if r.o.Resume {
		// registered values of skipped steps come back from the journal
		// as each step is skipped (see host)
		if r.resume, err = j.previous(); err != nil {
			return &InputError{err}
		}
	}
	r.journal = j
	return nil
}

// checkAuth refuses a run whose hosts lack usable credentials, all of them
// named at once, before any host is dialled.
func (r *run) checkAuth(hosts []*inventory.Host) error {
	if r.o.CheckAuth == nil {
		return nil
	}
	var errs []error
	for _, h := range hosts {
		if err := r.o.CheckAuth(h.SSH); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return &InputError{errors.Join(errs...)}
	}
	return nil
}

// targets selects a step's targets. The selector may name params
// (targets: "{{ .params.batch }}"): it is rendered with them alone
// (plan.TargetsData), since it is decided before any host is. A template
// that renders empty selects no host (a step for a host only when a param
// asks for it). {host: NAME} is exactly the host of that name.
func (r *run) targets(s *plan.Step, params map[string]any) ([]*inventory.Host, error) {
	sel := s.Targets
	if strings.Contains(sel, "{{") {
		var err error
		if sel, err = render.String(sel, plan.TargetsData(params)); err != nil {
			return nil, fmt.Errorf("targets: %w", err)
		}
		if strings.TrimSpace(sel) == "" {
			return nil, nil
		}
	}
	if s.TargetHost {
		return r.exactHost(sel)
	}
	return r.selectHosts(sel)
}

// exactHost is the inventory host named name (not an alias, a group or a
// glob), within --limit; a name no host has is an error.
func (r *run) exactHost(name string) ([]*inventory.Host, error) {
	for _, h := range r.o.Inventory.Hosts {
		if h.Name != name {
			continue
		}
		if r.o.Limit == "" {
			return []*inventory.Host{h}, nil
		}
		lim, err := r.o.Inventory.Select(r.o.Limit)
		if err != nil {
			return nil, fmt.Errorf("--limit: %w", err)
		}
		for _, l := range lim {
			if l == h {
				return []*inventory.Host{h}, nil
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("targets {host: %q}: no host of that name in the inventory (it names one host, never a group, alias or glob)", name)
}

// selectHosts resolves a selector within --limit.
func (r *run) selectHosts(expr string) ([]*inventory.Host, error) {
	hs, err := r.o.Inventory.Select(expr)
	if err != nil || r.o.Limit == "" {
		return hs, err
	}
	lim, err := r.o.Inventory.Select(r.o.Limit)
	if err != nil {
		return nil, fmt.Errorf("--limit: %w", err)
	}
	in := map[string]bool{}
	for _, h := range lim {
		in[h.Name] = true
	}
	var out []*inventory.Host
	for _, h := range hs {
		if in[h.Name] {
			out = append(out, h)
		}
	}
	return out, nil
}
