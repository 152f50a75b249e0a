package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/fanout"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/step"
)

// skipBeforeStartAt skips an action step the run reaches before
// --start-at. Registered as skipped, as by when: the operator chose not to
// run it, and later conditions read it like any skip. Not done: a later
// --resume must run it.
func (r *run) skipBeforeStartAt(s *plan.Step, hosts []*inventory.Host) {
	why := "before --start-at " + r.startAt
	for _, h := range hosts {
		r.remember(s, h, skipped(why))
		r.finish(s, h, report.Event{Kind: report.HostResult, Step: s.ID, Host: h.Name, Status: report.Skipped, Reason: why}, false)
	}
}

// leaf runs one action step on a batch, hosts in parallel; it returns when
// every host is done (a step is a barrier).
func (r *run) leaf(ctx context.Context, s *plan.Step, hosts []*inventory.Host, l scopeLayer) error {
	r.emit(report.Event{Kind: report.StepStart, Step: s.ID, Title: title(s), Hosts: names(hosts)})
	start := time.Now()
	runOn := hosts
	if s.RunOnce {
		runOn = hosts[:1]
	}
	// --concurrency hosts at a time; a host not started when the run is
	// interrupted fails with the interruption
	notStarted := fanout.Each(ctx, runOn, r.o.Concurrency, func(ctx context.Context, h *inventory.Host) error {
		r.host(ctx, s, h, l)
		return nil
	})
	for i, err := range notStarted {
		if err != nil {
			r.result(s, runOn[i], report.Failed, "", err, 0)
		}
	}
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
	if err == nil && s.IgnoreUnreachable {
		if err = r.reach(ctx, s, on); isUnreachable(err) {
			r.skipUnreachable(s, h, err, time.Since(start))
			return
		}
	}
	if err != nil {
		r.result(s, h, report.Failed, "", err, time.Since(start))
		return
	}
	res, why, err := r.act(ctx, s, h, on, data, l)
	if why == "" && r.isUnapplied(h) {
		why = notInstalledYet(err)
	}
	if why != "" && (err == nil || r.isUnapplied(h)) {
		r.skip(s, h, why, time.Since(start))
		return
	}
	reg, status, err := r.judge(s, res, err, data)
	r.showChange(s, h, status)
	r.remember(s, h, reg)
	r.conclude(s, h, res, status, err, time.Since(start))
}

// reach connects the hosts an ignore_unreachable step runs on (its target,
// or its delegates) before it acts on any: one that is down skips the step
// for this target, with nothing done anywhere.
func (r *run) reach(ctx context.Context, s *plan.Step, on []*inventory.Host) error {
	for _, dh := range on {
		if _, err := r.conn(ctx, s, dh); err != nil {
			return err
		}
	}
	return nil
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
		Host: h, Conn: conn, Sudo: sudo, Noop: r.o.Noop && !readOnly, Unapplied: r.isUnapplied(h), Data: data, Files: r.o.Files, Secrets: r.o.Redactor,
		Flavor: flavor, Groups: groups, Memo: r.memo,
		Emit: func(e report.Event) {
			e.Step, e.Host = s.ID, h.Name
			if e.Kind == report.WouldRun { // a command --noop shows and does not run
				r.markUnapplied(h)
			}
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

// notInstalledYet is why a --noop run skips a step that read a host for
// real and found its program missing (exit 127), on a host it showed
// changes it did not make (a bare host before the bootstrap: the install
// was only shown). "" for any other error.
func notInstalledYet(err error) string {
	var ee *step.ExitError
	if !errors.As(err, &ee) || ee.Result.ExitCode != 127 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(ee.Result.Stderr), "\n")
	return "--noop: " + strings.TrimSpace(lines[len(lines)-1]) + " (an earlier step would install it)"
}
