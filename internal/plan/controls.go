package plan

// A step's controls: targets, conditions, serial, register and the rest.

import (
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/yamldoc"
)

// controls decodes the step's controls in document order. It returns the
// conditions to check once the step's own register is known (until,
// changed_when, failed_when) and the vars and params of an include.
func (c *loadCtx) controls(d *yamldoc.Doc, s *Step, ps []yamldoc.Pair, form, label string, sc *scope) (late []yamldoc.Pair, varsN, paramsN ast.Node) {
	isAction := s.Kind != ""
	for _, kv := range ps {
		what := label + " " + kv.Key
		if form != "" && !isAction && slicesContains(actionOnly, kv.Key) {
			d.Errorf(kv.KeyN, "%q applies to action steps only, not to %s (a %s)", kv.Key, label, kindLabel(form))
			continue
		}
		switch kv.Key {
		case "until", "changed_when", "failed_when":
			late = append(late, kv)
		case "vars":
			varsN = kv.Val
			if form != "" && form != "role" {
				d.Errorf(kv.KeyN, "\"vars\" is only allowed on a role include, not on %s (a %s)", label, kindLabel(form))
			}
		case "params":
			paramsN = kv.Val
			if form != "" && form != "plan" {
				d.Errorf(kv.KeyN, "\"params\" is only allowed on a sub-plan include, not on %s (a %s)", label, kindLabel(form))
			}
		default:
			c.control(d, s, kv, what, sc)
		}
	}
	return late, varsN, paramsN
}

// control decodes one control that needs nothing but its own value.
func (c *loadCtx) control(d *yamldoc.Doc, s *Step, kv yamldoc.Pair, what string, sc *scope) {
	switch kv.Key {
	case "name":
		s.Name, _ = d.Str(kv.Val, what)
	case "targets":
		s.Targets, s.TargetHost = c.targets(d, kv.Val, what)
		line, col := yamldoc.Pos(kv.Val)
		s.targetsPos = Pos{File: d.File, Line: line, Col: col}
		c.template(d, kv.Val, s.Targets, sc)
		c.paramsOnly(d, kv.Val, s.Targets, what)
	case "delegate_to":
		s.DelegateTo = c.selector(d, kv.Val, what)
		line, col := yamldoc.Pos(kv.Val)
		s.delegatePos = Pos{File: d.File, Line: line, Col: col}
		c.template(d, kv.Val, s.DelegateTo, sc)
	case "when", "creates", "unless", "onlyif":
		c.setCondition(d, s, kv, what, sc)
	case "serial":
		s.Serial, _ = c.count(d, kv.Val, what, 1)
		c.template(d, kv.Val, s.Serial, sc)
	case "max_failures":
		if s.MaxFailures, _ = c.count(d, kv.Val, what, 0); strings.Contains(s.MaxFailures, "{{") {
			d.Errorf(kv.Val, "%s cannot be a template", what)
		}
	case "retries":
		if v, ok := d.Integer(kv.Val, what); ok {
			if v < 0 {
				d.Errorf(kv.Val, "%s must be 0 or more, got %d", what, v)
			}
			s.Retries = v
		}
	case "delay", "timeout":
		if v, ok := c.duration(d, kv.Val, what, kv.Key == "delay"); ok {
			if kv.Key == "delay" {
				s.Delay = v
			} else {
				s.Timeout = v
			}
		}
	case "run_once":
		s.RunOnce, _ = d.Boolean(kv.Val, what)
	case "ignore_errors":
		s.IgnoreErrors, _ = d.Boolean(kv.Val, what)
	case "ignore_unreachable":
		s.IgnoreUnreachable, s.unreachableSet = d.Boolean(kv.Val, what)
	case "sudo":
		if v, ok := d.Boolean(kv.Val, what); ok {
			s.Sudo = &v
		}
	case "register":
		s.Register = c.register(d, kv.Val, what, sc)
	}
}

// inheritUnreachable gives a block's ignore_unreachable to the steps inside
// it that do not write their own, and to theirs: the runner reads it on each
// action step alone (it decides what is dialled before the run).
func inheritUnreachable(steps []*Step, v bool) {
	for _, s := range steps {
		if !s.unreachableSet {
			s.IgnoreUnreachable = v
			inheritUnreachable(s.Steps, v)
		}
	}
}

// setCondition decodes a condition or guard into its field of s.
func (c *loadCtx) setCondition(d *yamldoc.Doc, s *Step, kv yamldoc.Pair, what string, sc *scope) {
	v := c.condition(d, kv.Val, what)
	c.template(d, kv.Val, v, sc)
	*map[string]*string{
		"when": &s.When, "creates": &s.Creates, "unless": &s.Unless, "onlyif": &s.Onlyif,
		"until": &s.Until, "changed_when": &s.ChangedWhen, "failed_when": &s.FailedWhen,
	}[kv.Key] = v
}

// register checks a register name: an identifier, once per file.
func (c *loadCtx) register(d *yamldoc.Doc, n ast.Node, what string, sc *scope) string {
	v, ok := d.Str(n, what)
	if !ok {
		return ""
	}
	switch prev, dup := sc.registers[v]; {
	case !registerRE.MatchString(v):
		d.Errorf(n, "%s: %q is not an identifier ([a-z_][a-z0-9_]*)", what, v)
	case dup:
		pl, pc := yamldoc.Pos(prev)
		d.Errorf(n, "%s: %q is already registered at %d:%d", what, v, pl, pc)
	default:
		sc.registers[v] = n
		return v
	}
	return ""
}

// selector decodes targets: a selector string or a list of terms.
func (c *loadCtx) selector(d *yamldoc.Doc, n ast.Node, what string) string {
	if seq, ok := d.Resolve(n).(*ast.SequenceNode); ok {
		var terms []string
		for _, x := range seq.Values {
			if s, ok := d.Str(x, what+" entry"); ok {
				terms = append(terms, s)
			}
		}
		return strings.Join(terms, ",")
	}
	s, ok := d.Str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		d.Errorf(n, "%s must not be empty", what)
	}
	return s
}

// targets decodes a step's targets: a selector, or {host: NAME}, exactly
// the inventory host of that name (never a group, alias or glob): what a
// certname param names.
func (c *loadCtx) targets(d *yamldoc.Doc, n ast.Node, what string) (string, bool) {
	switch d.Resolve(n).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := d.Mapping(n, what)
		d.CheckKeys(ps, what, "host")
		i := indexKey(ps, "host")
		if i < 0 {
			d.Errorf(n, "%s: a mapping names one host: {host: NAME}", what)
			return "", false
		}
		v, ok := d.Str(ps[i].Val, what+" host")
		if ok && strings.TrimSpace(v) == "" {
			d.Errorf(ps[i].Val, "%s host must not be empty", what)
		}
		return v, true
	}
	return c.selector(d, n, what), false
}

// paramsOnly refuses a template that reads more than TargetsData holds:
// targets and a sub-plan's params are rendered before any host is in
// scope, with the params alone.
func (c *loadCtx) paramsOnly(d *yamldoc.Doc, n ast.Node, s, what string) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := template.New("").Funcs(c.l.Funcs).Parse(s)
	if err != nil {
		return // reported by template
	}
	roots := targetsRoots()
	bad := map[string]bool{}
	for _, tr := range t.Templates() {
		if tr.Tree == nil {
			continue
		}
		walkTemplate(tr.Tree.Root, true, func(idents []string) {
			if len(idents) > 0 && !slicesContains(roots, idents[0]) && !bad[idents[0]] {
				bad[idents[0]] = true
				d.Errorf(n, "%s reads .%s: it is rendered before any host is in scope, with .%s alone",
					what, idents[0], strings.Join(roots, ", ."))
			}
		})
	}
}

// condition decodes a template string (a bare boolean is accepted too).
func (c *loadCtx) condition(d *yamldoc.Doc, n ast.Node, what string) string {
	if b, ok := d.Resolve(n).(*ast.BoolNode); ok {
		return strconv.FormatBool(b.Value)
	}
	s, _ := d.Str(n, what)
	return s
}

// count decodes serial / max_failures: an integer >= min or "N%".
func (c *loadCtx) count(d *yamldoc.Doc, n ast.Node, what string, min int) (string, bool) {
	n = d.Resolve(n)
	if i, ok := n.(*ast.IntegerNode); ok {
		v, _ := d.Integer(i, what)
		if v < min {
			d.Errorf(n, "%s must be %d or more, got %d", what, min, v)
			return "", false
		}
		return strconv.Itoa(v), true
	}
	if s, ok := n.(*ast.StringNode); ok && strings.Contains(s.Value, "{{") {
		// A template (serial: "{{ .params.batch }}"): checked when rendered.
		return s.Value, true
	} else if ok {
		num, pct := strings.CutSuffix(s.Value, "%")
		v, err := strconv.Atoi(num)
		switch {
		case err != nil:
		case v < min || pct && v > 100:
			d.Errorf(n, "%s must be between %d and 100%%, got %q", what, min, s.Value)
			return "", false
		default:
			if pct {
				return strconv.Itoa(v) + "%", true
			}
			return strconv.Itoa(v), true
		}
	}
	d.Errorf(n, "%s must be an integer or a percentage like \"25%%\", got %s", what, yamldoc.Kind(n))
	return "", false
}

func (c *loadCtx) duration(d *yamldoc.Doc, n ast.Node, what string, zeroOK bool) (time.Duration, bool) {
	s, ok := d.Str(n, what)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.Errorf(n, "%s: invalid duration %q (use a form like \"30s\" or \"5m\")", what, s)
		return 0, false
	case v < 0 || v == 0 && !zeroOK:
		d.Errorf(n, "%s must be positive, got %q", what, s)
		return 0, false
	}
	return v, true
}
