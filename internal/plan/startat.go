package plan

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/yamldoc"
)

// A step skipped by --start-at (or by when) registers Skipped: a later
// template may read those keys of it. Anything else it reads of a step
// that --start-at skips (its stdout, its data) is not known; CheckStartAt
// refuses such a start point before anything connects.

// SkippedKeys are the keys Skipped registers.
var SkippedKeys = []string{"skipped", "changed", "failed", "unreachable", "msg"}

// Skipped is the value a skipped step registers. unreachable is true only
// in the value of a step skipped because its host was down (see
// ignore_unreachable); every value a run registers has the key, so a
// template reads it without asking whether it is there.
func Skipped(why string) map[string]any {
	return map[string]any{"skipped": true, "changed": false, "failed": false, "unreachable": false, "msg": why}
}

// regRead is one `.registered.NAME.FIELD` a template reads: Name "" when
// it reads .registered whole (index, range), Field "" when it reads the
// value whole (with, a variable, a function argument).
type regRead struct {
	Name, Field string
	At          Pos
}

// noteRead records a .registered reference of the step being decoded.
func (c *loadCtx) noteRead(d *yamldoc.Doc, n ast.Node, idents []string) {
	if c.cur == nil || len(idents) == 0 || idents[0] != "registered" {
		return
	}
	r := regRead{}
	if len(idents) > 1 {
		r.Name = idents[1]
	}
	if len(idents) > 2 {
		r.Field = idents[2]
	}
	line, col := yamldoc.Pos(n)
	r.At = Pos{File: d.File, Line: line, Col: col}
	c.cur.reads = append(c.cur.reads, r)
}

// CheckStartAt refuses to start at the action step leaf (see StartLeaf)
// when a step the run would still evaluate reads a result, other than
// SkippedKeys, that only a step before leaf registers: that step is
// skipped, its result unknown. Blocks entirely before leaf are not
// evaluated (the runner skips them whole), so their own reads do not count.
func (p *Plan) CheckStartAt(leaf string) error {
	skipped := map[string]*Step{} // register → the skipped step that sets it
	started := false
	var errs diag.List
	check := func(s *Step) {
		for _, r := range s.reads {
			if r.Field != "" && slicesContains(SkippedKeys, r.Field) {
				continue
			}
			var by *Step
			if r.Name == "" {
				for _, st := range skipped {
					if by == nil || st.Pos.Line < by.Pos.Line {
						by = st
					}
				}
			} else {
				by = skipped[r.Name]
			}
			if by == nil {
				continue
			}
			what := ".registered whole (with index or range), where step \"" + by.ID + "\" too"
			if r.Name != "" {
				what = ".registered"
				what += "." + r.Name
			}
			if r.Field != "" && r.Name != "" {
				what += "." + r.Field
			}
			errs = append(errs, diag.New(r.At.File, p.sources[r.At.File], r.At.Line, r.At.Col,
				"--start-at %s: step %q reads %s, which step %q registers; it comes before %s, so it is skipped and its result is not known: start at or before %s",
				leaf, s.ID, what, by.ID, leaf, by.ID))
		}
	}
	_ = p.Walk(func(s *Step, _ int) error {
		if s.Steps != nil {
			if !started && !strings.HasPrefix(leaf, s.ID+"/") {
				// entirely before the start: its steps are skipped unevaluated
				_ = walk(s.Steps, 0, func(c *Step, _ int) error {
					if c.Register != "" {
						skipped[c.Register] = c
					}
					return nil
				})
				return ErrSkip
			}
			check(s)
			return nil
		}
		if s.ID == leaf {
			started = true
		}
		if !started {
			if s.Register != "" {
				skipped[s.Register] = s
			}
			return nil
		}
		check(s)
		if s.Register != "" {
			delete(skipped, s.Register) // registered again from here on
		}
		return nil
	})
	if !started {
		return fmt.Errorf("plan %q has no action step %q", p.Name, leaf)
	}
	return errs.Err()
}
