package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/step"
)

// policy is the failure tolerance in force: max_failures of the nearest
// step or block that sets it, counted over that step's whole target set.
type policy struct {
	set     bool
	allowed int
	pool    []*inventory.Host
	owner   string // the step id that set it, for messages
}

// steps runs a list of steps in order. inherited is the enclosing block's
// batch of hosts (nil at the top level).
func (r *run) steps(ctx context.Context, steps []*plan.Step, inherited []*inventory.Host, l scopeLayer, pol policy) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.one(ctx, s, inherited, l, pol); err != nil {
			return err
		}
	}
	return nil
}

// one runs a step or block on its targets, in serial batches when asked.
func (r *run) one(ctx context.Context, s *plan.Step, inherited []*inventory.Host, l scopeLayer, pol policy) error {
	targets := inherited
	if s.Targets != "" {
		var err error
		if targets, err = r.targets(s, l.params); err != nil {
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
	}
	targets = r.alive(targets)
	if s.MaxFailures != "" || !pol.set {
		allowed, err := render.Amount(s.MaxFailures, len(targets))
		if err != nil {
			return fmt.Errorf("step %s: max_failures: %w", s.ID, err)
		}
		pol = policy{set: s.MaxFailures != "", allowed: allowed, pool: targets, owner: s.ID}
	}
	if passThrough(s, inherited) {
		// A top-level block with no targets of its own (a sub-plan include
		// such as ca-rebuild's bootstrap): its steps choose their own.
		inner, err := r.enter(l, s)
		if err != nil {
			return err
		}
		r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s)})
		start := time.Now()
		if err := r.steps(ctx, s.Steps, nil, inner, pol); err != nil {
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
	inner := l
	// A block entirely before --start-at is not evaluated (its when, serial
	// and vars may read results of steps skipped before it): its steps
	// are skipped, host by host, without them.
	before := !r.started && isBlock(s) && !strings.HasPrefix(r.startAt, s.ID+"/")
	if isBlock(s) {
		var err error
		if inner, err = r.enter(l, s); err != nil {
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
			if err := r.steps(ctx, s.Steps, batch, inner, pol); err != nil {
				return err
			}
			r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Duration: time.Since(start)})
		} else if err := r.leaf(ctx, s, batch, l); err != nil {
			return err
		}
		if err := r.checkFailures(s, pol); err != nil {
			return err
		}
	}
	return nil
}

// passThrough: a block without targets, outside any block that gave it
// some, and without the controls that need its hosts (when, serial), runs
// its steps on the targets each of them names.
func passThrough(s *plan.Step, inherited []*inventory.Host) bool {
	return isBlock(s) && s.Targets == "" && inherited == nil && s.When == "" && s.Serial == ""
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

// leaf runs one action step on a batch, hosts in parallel; it returns when
// every host is done (a step is a barrier).
func (r *run) leaf(ctx context.Context, s *plan.Step, hosts []*inventory.Host, l scopeLayer) error {
	if !r.started {
		if s.ID != r.startAt {
			for _, h := range hosts {
				// Registered as skipped, as by when: the operator chose not
				// to run it, and later conditions read it like any skip.
				// Not done: a later --resume must run it.
				why := "before --start-at " + r.startAt
				r.remember(s, h, skipped(why))
				r.finish(s, h, report.Event{Kind: report.HostResult, Step: s.ID, Host: h.Name, Status: report.Skipped, Reason: why}, false)
			}
			return nil
		}
		r.started = true
	}
	r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s), Hosts: names(hosts)})
	start := time.Now()
	runOn := hosts
	if s.RunOnce {
		runOn = hosts[:1]
	}
	var wg sync.WaitGroup
	for _, h := range runOn {
		wg.Add(1)
		go func(h *inventory.Host) {
			defer wg.Done()
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				r.result(s, h, report.Failed, "", ctx.Err(), 0)
				return
			}
			defer func() { <-r.sem }()
			r.host(ctx, s, h, l)
		}(h)
	}
	wg.Wait()
	if s.RunOnce {
		r.copyRunOnce(s, hosts)
	}
	r.emit(report.Event{Kind: report.StepEnd, Step: s.ID, Duration: time.Since(start)})
	return ctx.Err()
}

// copyRunOnce gives the other hosts the registered result of the one that ran.
func (r *run) copyRunOnce(s *plan.Step, hosts []*inventory.Host) {
	first := hosts[0].Name
	for _, h := range hosts[1:] {
		r.mu.Lock()
		if s.Register != "" && r.registered[first] != nil {
			if r.registered[h.Name] == nil {
				r.registered[h.Name] = map[string]any{}
			}
			r.registered[h.Name][s.Register] = r.registered[first][s.Register]
		}
		r.mu.Unlock()
		r.result(s, h, report.Skipped, "run_once: ran on "+first, nil, 0)
	}
}

// host runs one step on one host: resume, when, the action on its
// delegates, then the result's controls and its recording.
func (r *run) host(ctx context.Context, s *plan.Step, h *inventory.Host, l scopeLayer) {
	start := time.Now()
	if d, ok := r.resumed(s, h); ok {
		r.skipResumed(s, h, d)
		return
	}
	data, err := r.data(h, l)
	if err != nil {
		r.result(s, h, report.Failed, "", err, time.Since(start))
		return
	}
	if ok, err := when(s, data); err != nil || !ok {
		if err != nil {
			r.result(s, h, report.Failed, "", err, time.Since(start))
		} else {
			r.skip(s, h, "when is false", time.Since(start))
		}
		return
	}
	on, err := r.delegates(s, h, l, data)
	if err != nil {
		r.result(s, h, report.Failed, "", err, time.Since(start))
		return
	}
	res, why, err := r.act(ctx, s, h, on, data, l)
	if err == nil && why != "" {
		r.skip(s, h, why, time.Since(start))
		return
	}
	reg, status, err := r.judge(s, res, err, data)
	r.remember(s, h, reg)
	r.conclude(s, h, res, status, err, time.Since(start))
}

// when renders a step's (or block's) when; no when is true.
func when(s *plan.Step, data map[string]any) (bool, error) {
	if s.When == "" {
		return true, nil
	}
	ok, err := render.Bool(s.When, data)
	if err != nil {
		return false, fmt.Errorf("when: %w", err)
	}
	return ok, nil
}

// judge turns an action's outcome into the registered value and the
// status: changed_when and failed_when have the last word, and under
// --noop a change that would happen registers as changed.
func (r *run) judge(s *plan.Step, res step.Result, err error, data map[string]any) (map[string]any, report.Status, error) {
	reg := registered(res, err)
	data["result"] = reg
	status := report.Unchanged
	if res.Changed {
		status = report.Changed
	}
	if res.Skip != "" {
		status = report.Skipped
	}
	if s.ChangedWhen != "" && err == nil {
		changed, cerr := render.Bool(s.ChangedWhen, data)
		if cerr != nil {
			err = fmt.Errorf("changed_when: %w", cerr)
		} else if changed {
			status = report.Changed
		} else {
			status = report.Unchanged
		}
		reg["changed"] = changed
	}
	if s.FailedWhen != "" && (err == nil || isExit(err)) {
		failed, ferr := render.Bool(s.FailedWhen, data)
		switch {
		case ferr != nil:
			err = fmt.Errorf("failed_when: %w", ferr)
		case failed && err == nil:
			err = errors.New("failed_when is true")
		case !failed:
			err = nil
		}
		reg["failed"] = err != nil
	}
	if r.o.Noop && !step.IsReadOnly(s.Action) && status == report.Changed {
		reg["changed"] = true
	}
	return reg, status, err
}

// conclude reports a host's judged result: an ignored error as a warning
// beside the status, a failure with the command's stderr.
func (r *run) conclude(s *plan.Step, h *inventory.Host, res step.Result, status report.Status, err error, d time.Duration) {
	switch {
	case err != nil && s.IgnoreErrors:
		r.emit(report.Event{Kind: report.Warning, Step: s.ID, Host: h.Name, Text: "error ignored: " + err.Error()})
		r.result(s, h, status, "", nil, d)
	case err != nil:
		r.resultWithStderr(s, h, err, res.Stderr, d)
	default:
		r.result(s, h, status, firstNonEmpty(res.Skip, res.Msg), nil, d)
	}
}

// skip reports a step skipped on a host by its own conditions (when,
// creates, unless, onlyif) and registers it as skipped, so later
// conditions can read .registered.NAME.changed without asking first
// whether the step ran.
func (r *run) skip(s *plan.Step, h *inventory.Host, why string, d time.Duration) {
	r.remember(s, h, skipped(why))
	r.result(s, h, report.Skipped, why, nil, d)
}

// skipResumed skips a step the previous run completed on this host. It
// registers what that run recorded, not a skip: a restart that depends on
// "the configuration changed" must still see the change when the run was
// interrupted between writing the file and restarting. A record without a
// value (a journal written before skips were registered) registers a skip.
func (r *run) skipResumed(s *plan.Step, h *inventory.Host, d done) {
	v := d.value
	if v == nil {
		v = skipped("done in the previous run")
	}
	r.remember(s, h, v)
	r.result(s, h, report.Skipped, "done in the previous run ("+string(d.status)+")", nil, 0)
}

// skipped is the value a skipped step registers.
func skipped(why string) map[string]any { return plan.Skipped(why) }

// skipBlock registers every step inside a block as skipped on a host its
// block when left out, as if each step had been skipped by its own when.
func (r *run) skipBlock(s *plan.Step, h *inventory.Host, why string) {
	for _, c := range s.Steps {
		if isBlock(c) {
			r.skipBlock(c, h, why)
		} else {
			r.remember(c, h, skipped(why))
		}
	}
}

// delegates are the hosts the action runs on for target h: h itself, or
// the hosts of the step's (or its block's) delegate_to. Delegates are
// reached as peers: --limit does not apply to them.
func (r *run) delegates(s *plan.Step, h *inventory.Host, l scopeLayer, data map[string]any) ([]*inventory.Host, error) {
	sel := s.DelegateTo
	if sel == "" {
		sel = l.delegate
	}
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

// act runs the action for target h on each host of on, in turn, in h's
// scope: guards, then the attempts. A non-empty reason (with a nil error)
// means every host skipped it. Results of several hosts add up: changed
// when any changed, messages and output prefixed with the host.
func (r *run) act(ctx context.Context, s *plan.Step, h *inventory.Host, on []*inventory.Host, data map[string]any, l scopeLayer) (step.Result, string, error) {
	action := s.Action.(step.Action)
	var sum step.Result
	var msgs, skips []string
	for _, dh := range on {
		x, err := r.exec(ctx, s, h, dh, data, l)
		if err != nil {
			return sum, "", err
		}
		why, err := r.guards(ctx, s, x)
		if err == nil && why == "" {
			var res step.Result
			res, err = r.attempts(ctx, s, x, action)
			if len(on) == 1 {
				return res, "", err
			}
			sum.Changed = sum.Changed || res.Changed
			sum.Stdout += res.Stdout
			sum.Stderr += res.Stderr
			sum.ExitCode = res.ExitCode
			msgs = append(msgs, dh.Name+": "+firstNonEmpty(res.Msg, firstNonEmpty(res.Skip, "ok")))
		}
		if err != nil {
			if len(on) > 1 {
				err = fmt.Errorf("on %s: %w", dh.Name, err)
			}
			return sum, "", err
		}
		if why != "" {
			skips = append(skips, why)
		}
	}
	if len(skips) == len(on) {
		return sum, strings.Join(skips, "; "), nil
	}
	sum.Msg = strings.Join(msgs, "; ")
	return sum, "", nil
}

// guards: creates/unless/onlyif. A non-empty reason means skip.
func (r *run) guards(ctx context.Context, s *plan.Step, x *step.Exec) (string, error) {
	if s.Creates != "" {
		path, err := x.Render(s.Creates)
		if err != nil {
			return "", fmt.Errorf("creates: %w", err)
		}
		res, err := x.Probe(ctx, "test -e "+render.ShellQuote(path))
		if err != nil {
			return "", err
		}
		if res.ExitCode == 0 {
			return path + " exists", nil
		}
	}
	for _, g := range []struct {
		cmd     string
		skipIf0 bool
		name    string
	}{{s.Unless, true, "unless"}, {s.Onlyif, false, "onlyif"}} {
		if g.cmd == "" {
			continue
		}
		cmd, err := x.Render(g.cmd)
		if err != nil {
			return "", fmt.Errorf("%s: %w", g.name, err)
		}
		res, err := x.Probe(ctx, cmd)
		if err != nil {
			return "", err
		}
		if (res.ExitCode == 0) == g.skipIf0 {
			return fmt.Sprintf("%s: %s exited %d", g.name, short(cmd), res.ExitCode), nil
		}
	}
	return "", nil
}

// attempts runs the action with timeout, retries, delay and until.
func (r *run) attempts(ctx context.Context, s *plan.Step, x *step.Exec, a step.Action) (step.Result, error) {
	tries := s.Retries + 1
	delay := s.Delay
	if delay == 0 && tries > 1 {
		delay = 5 * time.Second
	}
	var res step.Result
	var err error
	for i := 1; i <= tries; i++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if s.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, s.Timeout)
		}
		res, err = a.Run(actx, x)
		if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s", s.Timeout)
		}
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		done := err == nil
		if s.Until != "" && err == nil && !x.Noop {
			x.Data["result"] = registered(res, nil)
			ok, uerr := render.Bool(s.Until, x.Data)
			if uerr != nil {
				return res, fmt.Errorf("until: %w", uerr)
			}
			done = ok
			if !ok && i == tries {
				err = fmt.Errorf("until %q still false after %d tries", s.Until, tries)
			}
		}
		if done || i == tries {
			break
		}
		why := "until is false"
		if err != nil {
			why = err.Error()
		}
		r.emit(report.Event{Kind: report.HostLine, Step: s.ID, Host: x.Host.Name, Stream: "stderr",
			Text: fmt.Sprintf("try %d/%d: %s; again in %s", i, tries, oneLine(why), delay)})
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(delay):
		}
	}
	return res, err
}

// registered is the value `register` stores and .result exposes.
func registered(res step.Result, err error) map[string]any {
	m := map[string]any{
		"stdout":  res.Stdout,
		"stderr":  res.Stderr,
		"rc":      res.ExitCode,
		"changed": res.Changed,
		"failed":  err != nil,
		"skipped": res.Skip != "",
		"msg":     res.Msg,
		"data":    res.Data,
	}
	var ee *step.ExitError
	if errors.As(err, &ee) {
		m["rc"], m["stdout"], m["stderr"] = ee.Result.ExitCode, ee.Result.Stdout, ee.Result.Stderr
	}
	if res.Data == nil {
		var v any
		if s := strings.TrimSpace(res.Stdout); s != "" && (s[0] == '{' || s[0] == '[') && json.Unmarshal([]byte(s), &v) == nil {
			m["data"] = v
		}
	}
	// kept for the rest of the run: bounded (data is parsed from the whole)
	m["stdout"], _ = clip(m["stdout"].(string), keepLimit)
	m["stderr"], _ = clip(m["stderr"].(string), keepLimit)
	return m
}

func (r *run) remember(s *plan.Step, h *inventory.Host, v any) {
	if s.Register == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.registered[h.Name] == nil {
		r.registered[h.Name] = map[string]any{}
	}
	r.registered[h.Name][s.Register] = v
}

func (r *run) result(s *plan.Step, h *inventory.Host, st report.Status, reason string, err error, d time.Duration) {
	e := report.Event{Kind: report.HostResult, Step: s.ID, Host: h.Name, Status: st, Reason: reason, Duration: d}
	if err != nil {
		e.Status, e.Error = report.Failed, err.Error()
	}
	r.finish(s, h, e, e.Status != report.Failed)
}

func (r *run) resultWithStderr(s *plan.Step, h *inventory.Host, err error, stderr string, d time.Duration) {
	var ee *step.ExitError
	if errors.As(err, &ee) && stderr == "" {
		stderr = ee.Result.Stderr
	}
	r.finish(s, h, report.Event{Kind: report.HostResult, Step: s.ID, Host: h.Name, Status: report.Failed,
		Error: err.Error(), Stderr: stderr, Duration: d}, false)
}

// finish counts, reports and journals one host's result; done says whether
// --resume may skip the step on this host next time.
func (r *run) finish(s *plan.Step, h *inventory.Host, e report.Event, done bool) {
	r.mu.Lock()
	r.counts[e.Status]++
	if e.Status == report.Failed {
		r.failed[h.Name] = s.ID + ": " + oneLine(e.Error)
	}
	var val any
	if s.Register != "" && r.registered[h.Name] != nil {
		val = r.registered[h.Name][s.Register]
	}
	r.mu.Unlock()
	r.emit(e)
	if r.journal != nil {
		r.journal.result(s.ID, h.Name, e.Status, done, s.Register, val, e.Error)
	}
}

// resumed reports whether --resume skips this step on this host: the host
// completed it in the previous run, and every step before it too.
func (r *run) resumed(s *plan.Step, h *inventory.Host) (done, bool) {
	if r.resume == nil {
		return done{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	steps := r.resume[h.Name]
	d, ok := steps[s.ID]
	if !ok || steps["\x00broken"].status != "" {
		if steps == nil {
			steps = map[string]done{}
			r.resume[h.Name] = steps
		}
		steps["\x00broken"] = done{status: report.Failed} // from here on, this host runs everything
		return done{}, false
	}
	return d, true
}

// alive drops hosts that already failed.
func (r *run) alive(hosts []*inventory.Host) []*inventory.Host {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*inventory.Host, 0, len(hosts))
	for _, h := range hosts {
		if _, bad := r.failed[h.Name]; !bad {
			out = append(out, h)
		}
	}
	return out
}

// exec is what an action sees of target h: h's scope and facts, over the
// connection to on (h itself, a delegate, or a peer), with the step's sudo
// when it sets one, else on's. A read-only action runs for real under --noop.
func (r *run) exec(ctx context.Context, s *plan.Step, h, on *inventory.Host, data map[string]any, l scopeLayer) (*step.Exec, error) {
	conn, err := r.conn(ctx, s, on)
	if err != nil {
		return nil, err
	}
	sudo := on.SSH.Sudo
	if s.Sudo != nil {
		sudo = *s.Sudo
	}
	readOnly := step.IsReadOnly(s.Action)
	flavor, err := r.flavor(h)
	if err != nil {
		return nil, err
	}
	_, groups := r.groupData()
	return &step.Exec{
		Host: h, Conn: conn, Sudo: sudo, Noop: r.o.Noop && !readOnly, Data: data, Files: r.o.Files, Secrets: r.o.Redactor,
		Flavor: flavor, Groups: groups, Memo: r.memo,
		Emit: func(e report.Event) {
			e.Step, e.Host = s.ID, h.Name
			r.emit(e)
		},
		Peer: r.peer(s, l),
	}, nil
}

// peer gives an action an Exec on another inventory host (the CA, the load
// balancer) in that host's scope, over the connection the run opened and
// locked before the first step (see peers), with the step's sudo.
func (r *run) peer(s *plan.Step, l scopeLayer) func(ctx context.Context, name string) (*step.Exec, error) {
	return func(ctx context.Context, name string) (*step.Exec, error) {
		h := r.o.Inventory.Host(name)
		if h == nil {
			return nil, fmt.Errorf("no host %q in the inventory", name)
		}
		data, err := r.data(h, l)
		if err != nil {
			return nil, err
		}
		return r.exec(ctx, s, h, h, data, l)
	}
}

func title(s *plan.Step) string {
	if s.Name != "" {
		return s.Name
	}
	if isBlock(s) {
		if s.Source != "" {
			return s.Source
		}
		return "block"
	}
	return step.Title(s.Kind, s.Action)
}

// isBlock: a `steps` block, or an expanded role or sub-plan.
func isBlock(s *plan.Step) bool {
	switch s.Kind {
	case "", "steps", "role", "plan":
		return true
	}
	return false
}

func names(hs []*inventory.Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}

func isExit(err error) bool {
	var ee *step.ExitError
	return errors.As(err, &ee)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
