package plan

// Steps: each decoded into its id, its form (an action or a block) and its
// body; the controls are in controls.go, includes in include.go.

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/yamldoc"
)

// steps decodes a list of steps; parent is the parent's full id ("" at the top).
func (c *loadCtx) steps(f *srcFile, n ast.Node, parent string, sc *scope, owner string) []*Step {
	d := f.d
	n = d.Resolve(n)
	seq, ok := n.(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		if ok || yamldoc.IsNull(n) {
			d.Errorf(n, "%s has no steps", owner)
		} else {
			d.Errorf(n, "steps must be a list, got %s", yamldoc.Kind(n))
		}
		return nil
	}
	ids := map[string]ast.Node{}
	var out []*Step
	for _, item := range seq.Values {
		if _, isSlot := slotPair(d, item); isSlot {
			out = append(out, c.slot(f, item, parent, ids)...)
			continue
		}
		if s := c.step(f, item, parent, sc, ids); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// step decodes one step: its id, its form (an action or a block), its
// controls, then the action or block itself, then the conditions that may
// read the step's own result.
func (c *loadCtx) step(f *srcFile, n ast.Node, parent string, sc *scope, ids map[string]ast.Node) *Step {
	d := f.d
	n = d.Resolve(n)
	if !c.countStep(d, n) {
		return nil
	}
	ps, ok := d.Mapping(n, "a step")
	if !ok {
		return nil
	}
	line, col := yamldoc.Pos(n)
	s := &Step{Pos: Pos{File: d.File, Line: line, Col: col}}
	prev := c.cur
	c.cur = s
	defer func() { c.cur = prev }()

	// id first, so every other message can name the step.
	id := c.stepID(d, n, ps, ids)
	label := "step"
	if id != "" {
		label = fmt.Sprintf("step %q", id)
	}
	s.ID = id
	if parent != "" {
		s.ID = parent + "/" + id
	}
	form, act := c.stepForm(d, n, ps, label)
	if form != "" && !slicesContains(blockKinds, form) {
		s.Kind = form // blocks, roles and sub-plans keep Kind ""
	}
	late, varsN, paramsN := c.controls(d, s, ps, form, label, sc)
	var wrapped *yamldoc.Pair
	if i := indexKey(ps, "steps"); form == "role" && i >= 0 {
		wrapped = &ps[i]
	}
	if form != "" {
		c.stepBody(f, s, act, form, varsN, paramsN, wrapped, label, sc)
	}
	if s.unreachableSet {
		// after its steps: a nested block that sets its own gave it to its steps already
		inheritUnreachable(s.Steps, s.IgnoreUnreachable)
	}
	if s.Register != "" {
		c.registered[s.Register] = true
	}
	for _, kv := range late {
		c.setCondition(d, s, kv, label+" "+kv.Key, sc)
	}
	if s.Name == "" {
		s.Name = defaultName(s, id)
	}
	return s
}

// countStep counts a step against maxSteps; past it, the step is dropped
// and the first one over says through which includes the plan grew.
func (c *loadCtx) countStep(d *yamldoc.Doc, n ast.Node) bool {
	if c.nsteps++; c.nsteps <= maxSteps {
		return true
	}
	if c.nsteps == maxSteps+1 {
		chain := make([]string, len(c.stack))
		for i, inc := range c.stack {
			chain[i] = inc.label
		}
		d.Errorf(n, "the plan expands to more than %d steps (included through %s): do roles or sub-plans include each other several times?",
			maxSteps, strings.Join(chain, " > "))
	}
	return false
}

// stepID is the step's own id, checked: kebab-case and unique among ids
// (its block's). "" when missing.
func (c *loadCtx) stepID(d *yamldoc.Doc, n ast.Node, ps []yamldoc.Pair, ids map[string]ast.Node) string {
	i := indexKey(ps, "id")
	if i < 0 {
		d.Errorf(n, "step has no id (a kebab-case name unique within its block)")
		return ""
	}
	v, ok := d.Str(ps[i].Val, "id")
	if !ok {
		return ""
	}
	switch prev, dup := ids[v]; {
	case !idRE.MatchString(v):
		d.Errorf(ps[i].Val, "step id %q must be kebab-case (lower-case letters, digits and single dashes)", v)
	case dup:
		pl, pc := yamldoc.Pos(prev)
		d.Errorf(ps[i].Val, "duplicate step id %q (first used at %d:%d)", v, pl, pc)
	default:
		ids[v] = ps[i].Val
	}
	return v
}

// stepForm finds the step's one action kind or block key (steps, role,
// plan) and refuses unknown keys; form is "" when there is not exactly one.
func (c *loadCtx) stepForm(d *yamldoc.Doc, n ast.Node, ps []yamldoc.Pair, label string) (form string, act yamldoc.Pair) {
	var found []string
	var actN []yamldoc.Pair
	unknown := false
	for _, kv := range ps {
		switch {
		case slicesContains(blockKinds, kv.Key) || slicesContains(c.kinds, kv.Key):
			found = append(found, kv.Key)
			actN = append(actN, kv)
		case slicesContains(controlKeys, kv.Key):
		default:
			unknown = true
			d.Errorf(kv.KeyN, "unknown key %q in %s%s: not a step control or an action (actions: %s)",
				kv.Key, label, yamldoc.Suggest(kv.Key, append(append([]string{}, controlKeys...), c.kinds...)), strings.Join(c.kinds, ", "))
		}
	}
	if len(found) == 2 && slicesContains(found, "role") && slicesContains(found, "steps") {
		// a role that wraps a body: the steps go in its slot (see slot)
		return "role", actN[indexOf(found, "role")]
	}
	switch {
	case len(found) > 1:
		d.Errorf(actN[1].KeyN, "%s has several actions [%s]; use exactly one", label, strings.Join(found, " "))
	case len(found) == 0 && !unknown:
		d.Errorf(n, "%s has no action: expected one of %s, or steps, role, plan", label, strings.Join(c.kinds, ", "))
	case len(found) == 1:
		return found[0], actN[0]
	}
	return "", yamldoc.Pair{}
}

// stepBody decodes the step's action, or its block: inline steps, an
// expanded role or an expanded sub-plan.
func (c *loadCtx) stepBody(f *srcFile, s *Step, kv yamldoc.Pair, form string, varsN, paramsN ast.Node, wrapped *yamldoc.Pair, label string, sc *scope) {
	d := f.d
	switch form {
	case "steps":
		s.Steps = c.steps(f, kv.Val, s.ID, sc, label)
	case "role":
		c.expandRole(f, s, kv, varsN, wrapped, sc, label)
	case "plan":
		c.expandPlan(f, s, kv, paramsN, sc, label)
	default:
		body := kv.Val
		if body == nil {
			body = ast.Null(kv.KeyN.GetToken())
		}
		v, err := c.l.Actions.Decode(s.Kind, c.withSet(d, body, sc, label))
		if err != nil {
			for _, e := range d.FromYAML(err).(diag.List) {
				e.Msg = fmt.Sprintf("%s %s: %s", label, s.Kind, e.Msg)
				d.Errs = append(d.Errs, e)
			}
		} else {
			s.Action = v
			c.source(d, label+" "+s.Kind, body, v)
		}
		c.templates(d, kv.Val, sc)
	}
}

// source checks the local file an action reads; the error points at src.
func (c *loadCtx) source(d *yamldoc.Doc, what string, body ast.Node, action any) {
	sc, ok := c.l.Actions.(SourceChecker)
	if !ok {
		return
	}
	if err := sc.CheckSource(action, c.l.FS); err != nil {
		at := body
		if ps, _ := d.Mapping(body, what); indexKey(ps, "src") >= 0 {
			at = ps[indexKey(ps, "src")].Val
		}
		d.Errorf(at, "%s: %v", what, err)
	}
}

func kindLabel(k string) string {
	switch k {
	case "steps":
		return "block"
	case "role":
		return "role include"
	case "plan":
		return "sub-plan include"
	}
	return k + " step"
}

// defaultName is the title of a step without `name`.
func defaultName(s *Step, id string) string {
	if st, ok := s.Action.(fmt.Stringer); ok {
		if t := st.String(); t != "" {
			return t
		}
	}
	switch {
	case strings.HasPrefix(s.Source, "role:"):
		return "Role " + strings.TrimPrefix(s.Source, "role:")
	case strings.HasPrefix(s.Source, "plan:"):
		return "Plan " + strings.TrimPrefix(s.Source, "plan:")
	case s.Kind == "":
		return strings.ReplaceAll(id, "-", " ")
	}
	words := strings.ReplaceAll(s.Kind, "_", " ")
	return strings.ToUpper(words[:1]) + words[1:] + " (" + id + ")"
}
