package plan

// Includes: a role or a sub-plan expanded into a block of its steps.

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/yamldoc"
)

// expandRole turns `role: NAME` into a block of the role's steps.
func (c *loadCtx) expandRole(f *srcFile, s *Step, kv yamldoc.Pair, varsN ast.Node, wrapped *yamldoc.Pair, sc *scope, label string) {
	d := f.d
	name, ok := d.Str(kv.Val, label+" role")
	if !ok {
		return
	}
	s.Source = "role:" + name
	inc := include{key: "role:" + name, label: "role:" + name}
	if c.cycle(d, kv.Val, inc) {
		return
	}
	rf, err := c.openRole(name)
	if err != nil {
		if l, ok := diag.As(err); ok {
			c.errs = append(c.errs, l...)
		} else {
			d.Errorf(kv.Val, "%s: %v", label, err)
		}
		return
	}
	rd := rf.d
	top, _ := rd.Mapping(rf.body, "a role")
	rd.CheckKeys(top, "a role", roleKeys...)
	// The role's own vars are defaults (below inventory vars); the include's
	// vars sit above inventory vars.
	defaults := map[string]any{}
	params := map[string]bool{}
	var stepsN ast.Node
	for _, p := range top {
		switch p.Key {
		case "name", "description":
			rd.Str(p.Val, p.Key)
		case "params":
			params = c.roleParams(rf, p.Val, sc)
		case "vars":
			if ps, ok := rd.Mapping(p.Val, "role vars"); ok {
				for _, v := range ps {
					defaults[v.Key] = rd.Value(v.Val)
					c.templates(rd, v.Val, sc)
				}
			}
		case "steps":
			stepsN = p.Val
		}
	}
	vars := map[string]any{}
	if varsN != nil {
		if ps, ok := d.Mapping(varsN, label+" vars"); ok {
			for _, v := range ps {
				// A var would be shadowed by the param of the same name
				// and silently do nothing (a plan copied from before the
				// role declared it).
				if params[v.Key] {
					d.Errorf(v.KeyN, "%s: %q is a param of role %q: the plan takes it (-p %s=...; or declare it in the plan's params with a default), not vars", label, v.Key, name, v.Key)
					continue
				}
				vars[v.Key] = d.Value(v.Val)
				c.templates(d, v.Val, sc)
			}
		}
	}
	s.Vars, s.Defaults = vars, defaults
	if rf.body == nil || stepsN == nil {
		rd.Errorf(rf.body, "role %q has no steps", name)
		if rf.body == nil {
			d.Errorf(kv.Val, "role %q is empty", name)
		}
		return
	}
	c.stack = append(c.stack, inc)
	rsc := &scope{plan: sc.plan, params: sc.params, registers: map[string]ast.Node{}}
	outer := c.body
	var b *body
	if wrapped != nil {
		b = &body{f: f, n: wrapped.Val, sc: sc, outer: outer, key: wrapped.KeyN}
	}
	c.body = b
	s.Steps = c.steps(rf, stepsN, s.ID, rsc, "role "+strconv.Quote(name))
	c.body = outer
	c.stack = c.stack[:len(c.stack)-1]
	if b != nil && !b.used {
		d.Errorf(wrapped.KeyN, "%s: role %q has no body slot (- body: ...) for these steps", label, name)
	}
}

// expandPlan turns `plan: NAME` into a block of the sub-plan's steps.
func (c *loadCtx) expandPlan(f *srcFile, s *Step, kv yamldoc.Pair, paramsN ast.Node, sc *scope, label string) {
	d := f.d
	ref, ok := d.Str(kv.Val, label+" plan")
	if !ok {
		return
	}
	s.Source = "plan:" + ref
	key, lbl, pf, err := c.openPlan(ref, f.dir)
	if err != nil {
		if l, ok := diag.As(err); ok {
			c.errs = append(c.errs, l...)
		} else {
			d.Errorf(kv.Val, "%s: %v", label, err)
		}
		return
	}
	inc := include{key: key, label: lbl}
	if c.cycle(d, kv.Val, inc) {
		return
	}
	pd := pf.d
	top, _ := pd.Mapping(pf.body, "a plan")
	pd.CheckKeys(top, "a plan", planKeys...)
	subName := strings.TrimSuffix(strings.TrimSuffix(path.Base(filepath.ToSlash(ref)), ".yaml"), ".yml")
	var params []Param
	var stepsN, setsN ast.Node
	for _, p := range top {
		switch p.Key {
		case "name":
			if v, ok := pd.Str(p.Val, "name"); ok {
				subName = v
			}
		case "description":
			pd.Str(p.Val, "description")
		case "params":
			params = c.params(pf, p.Val)
		case "packages":
			setsN = p.Val
		case "steps":
			stepsN = p.Val
		}
	}
	// The include's params: declared names only, literal values typed,
	// every required param given.
	given := map[string]any{}
	if paramsN != nil {
		ps, _ := d.Mapping(paramsN, label+" params")
		for _, p := range ps {
			decl := findParam(params, p.Key)
			if decl == nil {
				d.Errorf(p.KeyN, "%s: plan %q has no param %q (it declares: %s)", label, subName, p.Key, paramNames(params))
				continue
			}
			c.templates(d, p.Val, sc)
			if str, isStr := d.Resolve(p.Val).(*ast.StringNode); isStr && strings.Contains(str.Value, "{{") {
				c.paramsOnly(d, p.Val, str.Value, fmt.Sprintf("%s param %q", label, p.Key))
				given[p.Key] = str.Value
			} else if v, ok := c.typed(d, p.Val, *decl, fmt.Sprintf("param %q of plan %q", p.Key, subName)); ok {
				given[p.Key] = v
			}
		}
	}
	for _, p := range params {
		if _, ok := given[p.Name]; !ok && p.Required {
			d.Errorf(kv.Val, "%s: plan %q requires param %q (%s)%s", label, subName, p.Name, p.Type, descSuffix(p.Description))
		}
	}
	s.Params, s.subParams = given, params
	if stepsN == nil {
		pd.Errorf(pf.body, "plan %q has no steps", subName)
		return
	}
	c.stack = append(c.stack, inc)
	psc := &scope{plan: subName, params: &params, registers: map[string]ast.Node{}}
	if setsN != nil {
		psc.sets = c.packageSets(pf, setsN, psc)
	}
	s.Steps = c.steps(pf, stepsN, s.ID, psc, "plan "+strconv.Quote(subName))
	s.subParams = params // with the params of the roles it includes
	c.stack = c.stack[:len(c.stack)-1]
}

func descSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// cycle reports (and records) an include cycle.
func (c *loadCtx) cycle(d *yamldoc.Doc, n ast.Node, inc include) bool {
	for i, e := range c.stack {
		if e.key == inc.key {
			chain := []string{}
			for _, x := range c.stack[i:] {
				chain = append(chain, x.label)
			}
			d.Errorf(n, "include cycle: %s -> %s", strings.Join(chain, " -> "), inc.label)
			return true
		}
	}
	return false
}

func findParam(ps []Param, name string) *Param {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i]
		}
	}
	return nil
}

func paramNames(ps []Param) string {
	if len(ps) == 0 {
		return "none"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func indexKey(ps []yamldoc.Pair, k string) int {
	for i, p := range ps {
		if p.Key == k {
			return i
		}
	}
	return -1
}

func hasKey(ps []yamldoc.Pair, k string) bool { return indexKey(ps, k) >= 0 }

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
