package inventory

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/yamldoc"
)

// groupMap decodes `groups:` (name → group) under parent.
func (l *loader) groupMap(n ast.Node, parent *groupDef) {
	ps, ok := l.d.Mapping(n, "groups")
	if !ok {
		return
	}
	for _, p := range ps {
		l.group(p, parent)
	}
}

func (l *loader) group(p yamldoc.Pair, parent *groupDef) {
	d := l.d
	name := p.Key
	switch {
	case name == "all":
		d.Errorf(p.KeyN, "group name \"all\" is reserved (it selects every host)")
		return
	case !groupNameRE.MatchString(name):
		d.Errorf(p.KeyN, "invalid group name %q (use letters, digits, '_' and '-')", name)
		return
	}
	if prev, dup := l.byName[name]; dup {
		line, col := yamldoc.Pos(prev.keyN)
		d.Errorf(p.KeyN, "group %q is already defined at %d:%d", name, line, col)
		return
	}
	gd := &groupDef{g: &Group{Name: name, Vars: map[string]any{}}, parent: parent, keyN: p.KeyN}
	if parent != nil {
		gd.g.Parent = parent.g.Name
		parent.g.Children = append(parent.g.Children, name)
	}
	l.byName[name] = gd
	l.groups = append(l.groups, gd)
	l.inv.Groups = append(l.inv.Groups, gd.g)

	what := fmt.Sprintf("group %q", name)
	ps, ok := d.Mapping(p.Val, what)
	if !ok {
		return
	}
	d.CheckKeys(ps, what, groupKeys...)
	for _, q := range ps {
		switch q.Key {
		case "vars":
			gd.vars = l.vars(q.Val, what+" vars")
		case "config":
			gd.ssh = l.config(q.Val)
		case "targets":
			l.targets(q.Val, gd)
		case "groups":
			l.groupMap(q.Val, gd)
		}
	}
}

// targets decodes a list of targets (names or mappings) in group g.
func (l *loader) targets(n ast.Node, g *groupDef) {
	d := l.d
	n = d.Resolve(n)
	if yamldoc.IsNull(n) {
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.Errorf(n, "targets must be a list, got %s", yamldoc.Kind(n))
		return
	}
	for _, item := range seq.Values {
		item = d.Resolve(item)
		switch v := item.(type) {
		case *ast.StringNode:
			if l.checkHostName(v.Value, item, "target") {
				l.entries = append(l.entries, &entry{name: v.Value, node: item, group: g})
			}
		case *ast.MappingNode, *ast.MappingValueNode:
			l.targetMap(item, g)
		default:
			d.Errorf(item, "a target must be a host name or a mapping with \"name\", got %s", yamldoc.Kind(item))
		}
	}
}

func (l *loader) targetMap(n ast.Node, g *groupDef) {
	d := l.d
	ps, _ := d.Mapping(n, "target")
	e := &entry{node: n, isMap: true, group: g}
	for _, p := range ps {
		if p.Key == "name" {
			if s, ok := d.Str(p.Val, "target name"); ok && l.checkHostName(s, p.Val, "target") {
				e.name = s
			}
		}
	}
	what := "target"
	if e.name != "" {
		what = fmt.Sprintf("target %q", e.name)
	}
	d.CheckKeys(ps, what, targetKeys...)
	var portN ast.Node
	port := 0
	for _, p := range ps {
		switch p.Key {
		case "address":
			if s, ok := d.Str(p.Val, "address"); ok {
				if s == "" {
					d.Errorf(p.Val, "address must not be empty")
				} else {
					e.address, e.addrN = s, p.Val
				}
			}
		case "port":
			if v, ok := l.port(p.Val, "port"); ok {
				port, portN = v, p.Val
			}
		case "aliases":
			al, _ := d.StrList(p.Val, "aliases")
			for _, a := range al {
				if l.checkHostName(a, p.Val, "alias") {
					e.aliases = append(e.aliases, a)
					e.aliasN = append(e.aliasN, p.Val)
				}
			}
		case "vars":
			e.vars = l.vars(p.Val, what+" vars")
		case "config":
			e.ssh = l.config(p.Val)
		}
	}
	if portN != nil {
		if e.ssh == nil {
			e.ssh = map[string]setting{}
		}
		e.ssh["port"] = setting{v: port, n: portN}
	}
	if e.name == "" {
		if len(ps) > 0 && !hasKey(ps, "name") {
			d.Errorf(n, "target has no \"name\"")
		}
		return
	}
	l.entries = append(l.entries, e)
}

func hasKey(ps []yamldoc.Pair, k string) bool {
	for _, p := range ps {
		if p.Key == k {
			return true
		}
	}
	return false
}

func (l *loader) checkHostName(s string, n ast.Node, what string) bool {
	switch {
	case s == "":
		l.d.Errorf(n, "%s name must not be empty", what)
	case s == "all":
		l.d.Errorf(n, "%s name \"all\" is reserved (it selects every host)", what)
	case strings.ContainsAny(s, " \t,!*?[]{}"):
		l.d.Errorf(n, "invalid %s name %q (no spaces, commas, '!' or glob characters)", what, s)
	default:
		return true
	}
	return false
}
