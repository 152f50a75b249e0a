package plan

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/yamldoc"
)

// A role can wrap a body of steps: where the role writes
//
//	- body: the work on this compiler, out of the pool
//
// the including step's own `steps` are decoded, in the including file's
// scope (its params, registers and package sets), as steps of the role's
// block. So the pool cycle (pause, leave, the work, restart, gate, join,
// resume) is written once, in roles/pool-cycle.yaml, and every plan that
// works on a compiler fills in only the work.

// body is the steps a role include wraps.
type body struct {
	f     *srcFile
	n     ast.Node // the include's `steps`
	sc    *scope   // the including file's scope
	outer *body    // the body in force where the role was included
	key   ast.Node // the include's `steps` key, for errors
	used  bool
}

// slotPair is the `body` pair of a role step that is a body slot.
func slotPair(d *yamldoc.Doc, n ast.Node) (yamldoc.Pair, bool) {
	var kvs []*ast.MappingValueNode
	switch v := d.Resolve(n).(type) {
	case *ast.MappingNode:
		kvs = v.Values
	case *ast.MappingValueNode:
		kvs = []*ast.MappingValueNode{v}
	}
	for _, kv := range kvs {
		if kv.Key.GetToken().Value == "body" {
			return yamldoc.Pair{Key: "body", KeyN: kv.Key, Val: d.Resolve(kv.Value)}, true
		}
	}
	return yamldoc.Pair{}, false
}

// slot decodes the wrapped body where a role's slot stands: its steps join
// the role's block (ids unique with the role's own).
func (c *loadCtx) slot(f *srcFile, n ast.Node, parent string, ids map[string]ast.Node) []*Step {
	d := f.d
	ps, _ := d.Mapping(n, "a body slot")
	if len(ps) != 1 {
		d.Errorf(n, "a body slot is `- body: DESCRIPTION` alone (the including step's steps take its place)")
		return nil
	}
	d.Str(ps[0].Val, "body")
	b := c.body
	switch {
	case len(c.stack) < 2 || !strings.HasPrefix(c.stack[len(c.stack)-1].key, "role:"):
		d.Errorf(n, "body: only a role has a body slot (the steps of the step that includes it)")
		return nil
	case b == nil:
		return nil // included without steps: the slot is empty
	case b.used:
		d.Errorf(n, "a role has one body slot")
		return nil
	}
	b.used = true
	c.body = b.outer // the body's own role includes wrap their own steps
	defer func() { c.body = b }()
	stack := c.stack
	c.stack = c.stack[:len(c.stack)-1] // the body is the includer's, not the role's
	defer func() { c.stack = stack }()
	seq, ok := b.f.d.Resolve(b.n).(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		b.f.d.Errorf(b.n, "steps (the body the role wraps) must be a non-empty list")
		return nil
	}
	var out []*Step
	for _, item := range seq.Values {
		if s := c.step(b.f, item, parent, b.sc, ids); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// roleParams adds a role's declared params to the params of the plan that
// includes it: a param is declared once, by the role that reads it, and
// every plan including the role takes it (-p drain_timeout=...). A plan's
// own declaration of the same name wins; its type must match. It returns the
// role's param names.
func (c *loadCtx) roleParams(rf *srcFile, n ast.Node, sc *scope) map[string]bool {
	names := map[string]bool{}
	for _, p := range c.params(rf, n) {
		names[p.Name] = true
		switch own := findParam(*sc.params, p.Name); {
		case own == nil:
			*sc.params = append(*sc.params, p)
		case own.Type != p.Type:
			if f := c.files[own.Pos.File]; f != nil {
				f.d.Errs = append(f.d.Errs, diag.New(f.d.File, f.d.Src, own.Pos.Line, own.Pos.Col,
					"param %q is %s here but %s in the role that declares it (%s:%d)",
					p.Name, own.Type, p.Type, p.Pos.File, p.Pos.Line))
			}
		}
	}
	return names
}

// packageSets are a plan's named package sets: flavor part (server, agent,
// termini, db) → the version to reach, "" for the newest offered.
type packageSets map[string]*ast.MappingNode

// packageSets decodes a plan's `packages`.
func (c *loadCtx) packageSets(f *srcFile, n ast.Node, sc *scope) packageSets {
	d := f.d
	ps, ok := d.Mapping(n, "packages")
	if !ok {
		return nil
	}
	sets := packageSets{}
	for _, kv := range ps {
		what := fmt.Sprintf("package set %q", kv.Key)
		parts, ok := d.Mapping(kv.Val, what)
		if !ok {
			continue
		}
		if len(parts) == 0 {
			d.Errorf(kv.Val, "%s names no package", what)
			continue
		}
		m := &ast.MappingNode{BaseNode: &ast.BaseNode{}, Start: kv.Val.GetToken()}
		for _, p := range parts {
			d.Str(p.Val, what+" "+p.Key)
			m.Values = append(m.Values, ast.MappingValue(p.KeyN.GetToken(), p.KeyN.(ast.MapKeyNode), p.Val))
		}
		c.templates(d, kv.Val, sc)
		sets[kv.Key] = m
	}
	return sets
}

// withSet is an action's body with its `set: NAME` (or a list of names)
// replaced by `parts:` holding those sets' parts.
func (c *loadCtx) withSet(d *yamldoc.Doc, body ast.Node, sc *scope, label string) ast.Node {
	m, ok := d.Resolve(body).(*ast.MappingNode)
	if !ok {
		return body
	}
	for i, kv := range m.Values {
		if kv.Key.GetToken().Value != "set" {
			continue
		}
		var names []string
		if s, isStr := d.Resolve(kv.Value).(*ast.StringNode); isStr {
			names = []string{s.Value}
		} else if names, ok = d.StrList(kv.Value, label+" set"); !ok {
			return body
		}
		parts := &ast.MappingNode{BaseNode: &ast.BaseNode{}, Start: kv.Value.GetToken()}
		seen := map[string]*ast.MappingValueNode{}
		from := map[string]string{}
		for _, name := range names {
			set, found := sc.sets[name]
			if !found {
				d.Errorf(kv.Value, "%s: no package set %q (the plan's packages: %s)", label, name, setNames(sc.sets))
				return body
			}
			for _, p := range set.Values {
				part := p.Key.GetToken().Value
				if prev, dup := seen[part]; dup {
					// the same part in two sets: fine when both want the same version
					if prev.Value.GetToken().Value != p.Value.GetToken().Value {
						d.Errorf(kv.Value, "%s: part %q has different versions in package sets %q and %q", label, part, from[part], name)
						return body
					}
					continue
				}
				seen[part], from[part] = p, name
				parts.Values = append(parts.Values, p)
			}
		}
		key := ast.String(token.New("parts", "parts", kv.Key.GetToken().Position))
		out := &ast.MappingNode{BaseNode: &ast.BaseNode{}, Start: m.Start, End: m.End, IsFlowStyle: m.IsFlowStyle}
		out.Values = append(append(append(out.Values, m.Values[:i]...), ast.MappingValue(kv.Key.GetToken(), key, parts)), m.Values[i+1:]...)
		return out
	}
	return body
}

func setNames(sets packageSets) string {
	if len(sets) == 0 {
		return "none"
	}
	return strings.Join(yamldoc.SortedKeys(sets), ", ")
}
