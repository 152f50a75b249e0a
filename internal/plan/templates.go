package plan

import (
	"regexp"
	"sort"
	"strings"
	"text/template"
	tparse "text/template/parse"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/yamldoc"
)

var tmplErrPrefix = regexp.MustCompile(`^template: [^:]*:(\d+:)?(\d+:)? ?`)

// templates checks every string scalar under n (mapping values and list
// items; keys are not templates).
func (c *loadCtx) templates(d *yamldoc.Doc, n ast.Node, sc *scope) {
	n = d.Resolve(n)
	switch v := n.(type) {
	case *ast.StringNode:
		c.template(d, v, v.Value, sc)
	case *ast.LiteralNode:
		c.template(d, v, v.Value.Value, sc)
	case *ast.MappingNode:
		for _, kv := range v.Values {
			c.templates(d, kv.Value, sc)
		}
	case *ast.MappingValueNode:
		c.templates(d, v.Value, sc)
	case *ast.SequenceNode:
		for _, x := range v.Values {
			c.templates(d, x, sc)
		}
	}
}

// template parses s (when it holds "{{") with the loader's functions and
// checks its .params and .registered references; problems point at n.
func (c *loadCtx) template(d *yamldoc.Doc, n ast.Node, s string, sc *scope) {
	if !strings.Contains(s, "{{") {
		return
	}
	t, err := template.New("").Funcs(c.l.Funcs).Parse(s)
	if err != nil {
		d.Errorf(n, "invalid template: %s", tmplErrPrefix.ReplaceAllString(err.Error(), ""))
		return
	}
	reported := map[string]bool{}
	check := func(idents []string) {
		c.noteRead(d, n, idents)
		if len(idents) < 2 {
			return
		}
		root, name := idents[0], idents[1]
		key := root + "." + name
		if reported[key] {
			return
		}
		switch root {
		case "params":
			// checked at the end: a role included later may declare it
			reported[key] = true
			c.paramRefs = append(c.paramRefs, paramRef{d: d, n: n, name: name, sc: sc})
		case "site":
			if c.l.SiteKeys != nil && !slicesContains(c.l.SiteKeys, name) {
				reported[key] = true
				d.Errorf(n, "template references .site.%s: the site has %s%s",
					name, strings.Join(c.l.SiteKeys, ", "), yamldoc.Suggest(name, c.l.SiteKeys))
			}
		case "registered":
			if !c.registered[name] {
				reported[key] = true
				known := make([]string, 0, len(c.registered))
				for k := range c.registered {
					known = append(known, k)
				}
				sort.Strings(known)
				list := strings.Join(known, ", ")
				if list == "" {
					list = "none"
				}
				d.Errorf(n, "template references .registered.%s but no earlier step registers %q (registered so far: %s)%s",
					name, name, list, yamldoc.Suggest(name, known))
			}
		}
	}
	for _, tr := range t.Templates() {
		if tr.Tree != nil {
			walkTemplate(tr.Tree.Root, true, check)
		}
	}
}

// paramRef is a template's .params.NAME, checked once every role the plan
// includes has added its params.
type paramRef struct {
	d    *yamldoc.Doc
	n    ast.Node
	name string
	sc   *scope
}

// checkParamRefs reports the .params references no param answers.
func (c *loadCtx) checkParamRefs() {
	for _, r := range c.paramRefs {
		ps := *r.sc.params
		if findParam(ps, r.name) == nil {
			r.d.Errorf(r.n, "template references .params.%s but plan %q has no param %q (it declares: %s)%s",
				r.name, r.sc.plan, r.name, paramNames(ps), yamldoc.Suggest(r.name, paramList(ps)))
		}
	}
}

func paramList(ps []Param) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// walkTemplate calls check with the field chain of every reference to the
// root data: `.a.b` while dot is the root, and `$.a.b` anywhere.
func walkTemplate(n tparse.Node, rootDot bool, check func([]string)) {
	switch v := n.(type) {
	case nil:
	case *tparse.ListNode:
		if v == nil {
			return
		}
		for _, x := range v.Nodes {
			walkTemplate(x, rootDot, check)
		}
	case *tparse.ActionNode:
		walkTemplate(v.Pipe, rootDot, check)
	case *tparse.PipeNode:
		if v == nil {
			return
		}
		for _, cmd := range v.Cmds {
			walkTemplate(cmd, rootDot, check)
		}
	case *tparse.CommandNode:
		for _, a := range v.Args {
			walkTemplate(a, rootDot, check)
		}
	case *tparse.FieldNode:
		if rootDot {
			check(v.Ident)
		}
	case *tparse.VariableNode:
		if len(v.Ident) > 0 && v.Ident[0] == "$" {
			check(v.Ident[1:])
		}
	case *tparse.ChainNode:
		walkTemplate(v.Node, rootDot, check)
	case *tparse.IfNode:
		walkBranch(&v.BranchNode, rootDot, rootDot, check)
	case *tparse.RangeNode:
		walkBranch(&v.BranchNode, false, rootDot, check)
	case *tparse.WithNode:
		walkBranch(&v.BranchNode, false, rootDot, check)
	case *tparse.TemplateNode:
		walkTemplate(v.Pipe, rootDot, check)
	}
}

// walkBranch: the pipeline and the else branch see the outer dot; the body
// sees the outer dot only for `if`.
func walkBranch(b *tparse.BranchNode, bodyRoot, outer bool, check func([]string)) {
	walkTemplate(b.Pipe, outer, check)
	walkTemplate(b.List, bodyRoot, check)
	walkTemplate(b.ElseList, outer, check)
}
