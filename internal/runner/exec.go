package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
)

// policy is the failure tolerance in force: max_failures of the nearest
// step or block that sets it, counted over that step's whole target set.
type policy struct {
	set     bool
	allowed int
	pool    []*inventory.Host
	owner   string // the step id that set it, for messages
}

// execution is the run's visitor of the walk: each step on its targets, in
// serial batches when asked, under the failure policy in force.
type execution struct {
	w   *walker
	pol policy
}

// unresolved: targets that cannot be selected stop the run.
func (e execution) unresolved(_ *plan.Step, err error) error { return err }

// step runs a step or block on its targets, in serial batches when asked.
func (e execution) step(ctx context.Context, at stepAt) error {
	r, s, pol := e.w.r, at.Step, e.pol
	targets := r.alive(at.targets)
	if s.MaxFailures != "" || !pol.set {
		allowed, err := render.Amount(s.MaxFailures, len(targets))
		if err != nil {
			return fmt.Errorf("step %s: max_failures: %w", s.ID, err)
		}
		pol = policy{set: s.MaxFailures != "", allowed: allowed, pool: targets, owner: s.ID}
	}
	inside := execution{w: e.w, pol: pol}
	if at.passThrough() {
		// A top-level block with no targets of its own (a sub-plan include
		// such as ca-rebuild's bootstrap): its steps choose their own.
		inner, err := e.w.inner(at)
		if err != nil {
			return err
		}
		r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s)})
		start := time.Now()
		if err := e.w.block(ctx, at, inner, nil, inside); err != nil {
			return err
		}
		r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Duration: time.Since(start)})
		return nil
	}
	if len(targets) == 0 {
		r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s)})
		r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Text: "no hosts"})
		return nil
	}
	inner := at.layer
	// A block entirely before --start-at is not evaluated (its when, serial
	// and vars may read results of steps skipped before it): its steps
	// are skipped, host by host, without them.
	before := !e.w.started && isBlock(s) && !strings.HasPrefix(r.startAt, s.ID+"/")
	if isBlock(s) {
		var err error
		if inner, err = e.w.inner(at); err != nil {
			return err
		}
		if s.When != "" && !before {
			// A block's when is decided per host before its first batch, so
			// hosts that need nothing (a compiler already upgraded) take no
			// place in a rolling batch and are never drained.
			if targets = r.blockWhen(s, targets, inner); len(targets) == 0 {
				return r.checkFailures(s, pol)
			}
		}
	}
	size := len(targets)
	if s.Serial != "" && !before {
		serial, err := r.serial(s, targets[0], inner)
		if err != nil {
			return err
		}
		n, err := render.Amount(serial, len(targets))
		if err != nil {
			return fmt.Errorf("step %s: serial: %w", s.ID, err)
		}
		size = max(n, 1)
	}
	for i := 0; i < len(targets); i += size {
		batch := r.alive(targets[i:min(i+size, len(targets))])
		if len(batch) == 0 {
			continue
		}
		if isBlock(s) {
			label := title(s)
			if size < len(targets) {
				label = fmt.Sprintf("%s (batch %d of %d)", label, i/size+1, (len(targets)+size-1)/size)
			}
			r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: label, Hosts: names(batch)})
			start := time.Now()
			if err := e.w.block(ctx, at, inner, batch, inside); err != nil {
				return err
			}
			r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Duration: time.Since(start)})
		} else if !e.w.reached(s) {
			r.skipBeforeStartAt(s, batch)
		} else if err := r.leaf(ctx, s, batch, at.layer); err != nil {
			return err
		}
		if err := r.checkFailures(s, pol); err != nil {
			return err
		}
	}
	return nil
}

// blockWhen keeps the hosts whose scope makes the block's when true; the
// others get one skipped result for the whole block, under a header of its
// own so the report shows them with the block.
func (r *run) blockWhen(s *plan.Step, hosts []*inventory.Host, l scopeLayer) []*inventory.Host {
	var keep []*inventory.Host
	type out struct {
		h   *inventory.Host
		err error
	}
	var outs []out
	for _, h := range hosts {
		data, err := r.data(h, l)
		ok := false
		if err == nil {
			ok, err = when(s, data)
		}
		if err == nil && ok {
			keep = append(keep, h)
			continue
		}
		outs = append(outs, out{h, err})
	}
	if len(outs) == 0 {
		return keep
	}
	r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s), Hosts: names(hosts)})
	for _, o := range outs {
		if o.err != nil {
			r.result(s, o.h, report.Failed, "", o.err, 0)
		} else {
			r.skipBlock(s, o.h, "block when is false")
			r.result(s, o.h, report.Skipped, "when is false", nil, 0)
		}
	}
	r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Text: fmt.Sprintf("when is false on %d of %d hosts", len(outs), len(hosts))})
	return keep
}

// serial renders a templated batch size ("{{ .params.batch }}") against the
// first target's scope: the size is one value for the whole step.
func (r *run) serial(s *plan.Step, h *inventory.Host, l scopeLayer) (string, error) {
	if !strings.Contains(s.Serial, "{{") {
		return s.Serial, nil
	}
	data, err := r.data(h, l)
	if err != nil {
		return "", fmt.Errorf("step %s: serial: %w", s.ID, err)
	}
	v, err := render.String(s.Serial, data)
	if err != nil {
		return "", fmt.Errorf("step %s: serial: %w", s.ID, err)
	}
	return strings.TrimSpace(v), nil
}

// checkFailures stops the run when more hosts of the policy's pool failed
// than it allows.
func (r *run) checkFailures(s *plan.Step, pol policy) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed []string
	for _, h := range pol.pool {
		if why, ok := r.failed[h.Name]; ok {
			failed = append(failed, h.Name+": "+why)
		}
	}
	if len(failed) <= pol.allowed {
		return nil
	}
	if pol.set {
		return fmt.Errorf("%w: %d host(s) failed under %s, more than max_failures %d:\n  %s", ErrFailed, len(failed), pol.owner, pol.allowed, strings.Join(failed, "\n  "))
	}
	return fmt.Errorf("%w at step %s:\n  %s", ErrFailed, s.ID, strings.Join(failed, "\n  "))
}
