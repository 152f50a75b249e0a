package plan

// The declarations of params: their names, types and typed defaults.

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/yamldoc"
)

// params decodes a plan's params.
func (c *loadCtx) params(f *srcFile, n ast.Node) []Param {
	d := f.d
	ps, ok := d.Mapping(n, "params")
	if !ok {
		return nil
	}
	var out []Param
	for _, kv := range ps {
		line, col := yamldoc.Pos(kv.KeyN)
		p := Param{Name: kv.Key, Type: "string", Pos: Pos{File: d.File, Line: line, Col: col}}
		if !paramRE.MatchString(p.Name) {
			d.Errorf(kv.KeyN, "invalid param name %q (use letters, digits and '_'; it is used as .params.%s)", p.Name, p.Name)
			continue
		}
		what := fmt.Sprintf("param %q", p.Name)
		fields, ok := d.Mapping(kv.Val, what)
		if !ok {
			continue
		}
		d.CheckKeys(fields, what, paramKeys...)
		var defN ast.Node
		for _, fl := range fields {
			switch fl.Key {
			case "type":
				if s, ok := d.Str(fl.Val, what+" type"); ok {
					if !slicesContains(ParamTypes, s) {
						d.Errorf(fl.Val, "%s: unknown type %q (expected one of: %s)", what, s, strings.Join(ParamTypes, ", "))
					} else {
						p.Type = s
					}
				}
			case "description":
				p.Description, _ = d.Str(fl.Val, what+" description")
			case "required":
				p.Required, _ = d.Boolean(fl.Val, what+" required")
			case "default":
				defN = fl.Val
			}
		}
		if defN != nil {
			if v, ok := c.typed(d, defN, p, "default of "+what); ok {
				p.Default = v
			}
			if p.Type == "secret" {
				// whatever it holds, an excerpt of its line must not show it
				if tk := d.Resolve(defN).GetToken(); tk != nil {
					c.secrets.Add(tk.Value)
				}
				if v, ok := p.Default.(string); ok {
					c.secrets.Add(v)
				}
			}
			if p.Required {
				d.Errorf(defN, "%s is required and has a default; use one or the other", what)
			}
		}
		out = append(out, p)
	}
	return out
}

// typed checks that n holds a value of p's type and returns it.
func (c *loadCtx) typed(d *yamldoc.Doc, n ast.Node, p Param, what string) (any, bool) {
	n = d.Resolve(n)
	ok := false
	switch p.Type {
	case "string", "secret", "certname", "serial":
		switch n.(type) {
		case *ast.StringNode, *ast.LiteralNode:
			ok = true
		}
	case "int":
		_, ok = n.(*ast.IntegerNode)
	case "bool":
		_, ok = n.(*ast.BoolNode)
	case "list":
		_, ok = n.(*ast.SequenceNode)
	case "map":
		switch n.(type) {
		case *ast.MappingNode, *ast.MappingValueNode:
			ok = true
		}
	}
	if !ok {
		hint := ""
		if isStringType(p.Type) {
			hint = "; quote it"
		}
		d.Errorf(n, "%s must be %s (type %s), got %s%s", what, article(p.Type), p.Type, yamldoc.Kind(n), hint)
		return nil, false
	}
	v := d.Value(n)
	if str, isStr := v.(string); isStr && (str != "" || p.Type != "certname") {
		// a certname default of "" is the zero value: "none given"
		if err := checkTyped(p.Type, str); err != nil {
			d.Errorf(n, "%s: %v", what, err)
			return nil, false
		}
	}
	return v, true
}

func article(t string) string {
	switch t {
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "list":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a string"
}
