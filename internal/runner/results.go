package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/step"
)

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

// showChange notes a change a --noop run showed on h and did not make.
func (r *run) showChange(s *plan.Step, h *inventory.Host, status report.Status) {
	if r.o.Noop && status == report.Changed && !step.IsReadOnly(s.Action) {
		r.markUnapplied(h)
	}
}

func (r *run) markUnapplied(h *inventory.Host) {
	r.mu.Lock()
	r.unapplied[h.Name] = true
	r.mu.Unlock()
}

// isUnapplied reports whether this --noop run showed h a change it did not make.
func (r *run) isUnapplied(h *inventory.Host) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unapplied[h.Name]
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

// skipUnreachable skips an ignore_unreachable step for target h: a host
// it runs on could not be connected (err). It registers a skip with
// unreachable: true, and is not done: --resume runs it again.
func (r *run) skipUnreachable(s *plan.Step, h *inventory.Host, err error, d time.Duration) {
	why := "unreachable: " + oneLine(err.Error())
	v := skipped(why)
	v["unreachable"] = true
	r.remember(s, h, v)
	r.finish(s, h, report.Event{Kind: report.HostResult, Step: s.ID, Host: h.Name, Status: report.Skipped, Reason: why, Duration: d}, false)
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
		// its hosts answered (see skipUnreachable): a template tests
		// .registered.NAME.unreachable without asking whether it is there
		"unreachable": false,
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
