package inventory

// Small helpers over goccy's AST so every problem is reported as a
// positioned diag.Error. (package plan has its own copy; keep them small.)

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/troupe/troupe/internal/diag"
)

// doc is one source file being decoded; it collects the errors.
type doc struct {
	file    string
	src     []byte
	errs    diag.List
	anchors map[string]ast.Node
}

// parse parses src into its single document body (nil for an empty file).
func parse(file string, src []byte) (*doc, ast.Node, error) {
	d := &doc{file: file, src: src, anchors: map[string]ast.Node{}}
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return d, nil, d.fromYAML(err)
	}
	var body ast.Node
	for i, dn := range f.Docs {
		if dn == nil || dn.Body == nil {
			continue
		}
		if i > 0 && body != nil {
			return d, nil, diag.List{d.at(dn.Body, "only one YAML document is allowed per file")}
		}
		body = dn.Body
	}
	if body != nil {
		d.collectAnchors(body)
	}
	return d, body, nil
}

// fromYAML turns a goccy error into a positioned error.
func (d *doc) fromYAML(err error) error {
	var de *diag.Error
	if errors.As(err, &de) {
		if de.File == "" {
			de.File = d.file
			de.Excerpt = diag.Excerpt(d.src, de.Line, de.Col)
		}
		return diag.List{de}
	}
	if l, ok := diag.As(err); ok {
		return l
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return diag.List{diag.New(d.file, d.src, p.Line, p.Column, "%s", ye.GetMessage())}
	}
	return diag.List{&diag.Error{File: d.file, Msg: err.Error()}}
}

func (d *doc) collectAnchors(n ast.Node) {
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil {
			d.anchors[v.Name.GetToken().Value] = v.Value
		}
		if v.Value != nil {
			d.collectAnchors(v.Value)
		}
	case *ast.MappingNode:
		for _, kv := range v.Values {
			d.collectAnchors(kv.Value)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(v.Value)
	case *ast.SequenceNode:
		for _, x := range v.Values {
			d.collectAnchors(x)
		}
	case *ast.TagNode:
		if v.Value != nil {
			d.collectAnchors(v.Value)
		}
	}
}

// pos is where a node starts (1-based line and column).
func pos(n ast.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		return pos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok {
		return pos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

func (d *doc) at(n ast.Node, format string, args ...any) *diag.Error {
	line, col := pos(n)
	return diag.New(d.file, d.src, line, col, format, args...)
}

func (d *doc) errorf(n ast.Node, format string, args ...any) {
	d.errs = append(d.errs, d.at(n, format, args...))
}

// resolve unwraps anchors, aliases and tags.
func (d *doc) resolve(n ast.Node) ast.Node {
	for i := 0; i < 16 && n != nil; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			t, ok := d.anchors[v.Value.GetToken().Value]
			if !ok {
				return n
			}
			n = t
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	return n
}

func isNull(n ast.Node) bool {
	if n == nil {
		return true
	}
	_, ok := n.(*ast.NullNode)
	return ok
}

// pair is one key/value of a mapping.
type pair struct {
	Key  string
	KeyN ast.Node
	Val  ast.Node // resolved
}

// mapping returns the pairs of a mapping node in file order; null is an empty
// mapping. what names the thing for the error message.
func (d *doc) mapping(n ast.Node, what string) ([]pair, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, true
	}
	var kvs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		kvs = v.Values
	case *ast.MappingValueNode:
		kvs = []*ast.MappingValueNode{v}
	default:
		d.errorf(n, "%s must be a mapping, got %s", what, kind(n))
		return nil, false
	}
	out := make([]pair, 0, len(kvs))
	for _, kv := range kvs {
		if _, ok := kv.Key.(*ast.MergeKeyNode); ok {
			d.errorf(kv.Key, "merge keys (<<) are not supported")
			continue
		}
		k := kv.Key.GetToken().Value
		if s, ok := d.resolve(kv.Key).(*ast.StringNode); ok {
			k = s.Value
		}
		out = append(out, pair{Key: k, KeyN: kv.Key, Val: d.resolve(kv.Value)})
	}
	return out, true
}

// checkKeys reports keys not in allowed and returns false when any was found.
func (d *doc) checkKeys(ps []pair, what string, allowed ...string) bool {
	ok := true
	for _, p := range ps {
		found := false
		for _, a := range allowed {
			if a == p.Key {
				found = true
				break
			}
		}
		if !found {
			ok = false
			d.errorf(p.KeyN, "unknown key %q in %s%s (expected one of: %s)", p.Key, what, suggest(p.Key, allowed), strings.Join(allowed, ", "))
		}
	}
	return ok
}

// suggest returns `; did you mean "x"?` for a close match.
func suggest(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if dd := editDistance(word, c); dd < bestD {
			best, bestD = c, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// kind names a node's type for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	}
	return n.Type().String()
}

// str decodes a string scalar.
func (d *doc) str(n ast.Node, what string) (string, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	}
	d.errorf(n, "%s must be a string, got %s", what, kind(d.resolve(n)))
	return "", false
}

func (d *doc) integer(n ast.Node, what string) (int, bool) {
	if v, ok := d.resolve(n).(*ast.IntegerNode); ok {
		switch x := v.Value.(type) {
		case int64:
			return int(x), true
		case uint64:
			if x <= 1<<31 {
				return int(x), true
			}
		}
	}
	d.errorf(n, "%s must be an integer, got %s", what, kind(d.resolve(n)))
	return 0, false
}

func (d *doc) boolean(n ast.Node, what string) (bool, bool) {
	if v, ok := d.resolve(n).(*ast.BoolNode); ok {
		return v.Value, true
	}
	d.errorf(n, "%s must be true or false, got %s", what, kind(d.resolve(n)))
	return false, false
}

func (d *doc) duration(n ast.Node, what string) (time.Duration, bool) {
	s, ok := d.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: invalid duration %q (use a form like \"10s\" or \"2m\")", what, s)
		return 0, false
	}
	if v <= 0 {
		d.errorf(n, "%s must be positive, got %q", what, s)
		return 0, false
	}
	return v, true
}

// strList decodes a list of strings (a single string is a one-element list).
func (d *doc) strList(n ast.Node, what string) ([]string, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return nil, true
	}
	if _, isStr := n.(*ast.StringNode); isStr {
		s, _ := d.str(n, what)
		return []string{s}, true
	}
	seq, isSeq := n.(*ast.SequenceNode)
	if !isSeq {
		d.errorf(n, "%s must be a list of strings, got %s", what, kind(n))
		return nil, false
	}
	var out []string
	ok := true
	for _, x := range seq.Values {
		s, good := d.str(x, what+" entry")
		if good {
			out = append(out, s)
		}
		ok = ok && good
	}
	return out, ok
}

// value converts a node to plain Go data: map[string]any, []any, string,
// int, float64, bool or nil.
func (d *doc) value(n ast.Node) any {
	n = d.resolve(n)
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := d.mapping(v, "value")
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			m[p.Key] = d.value(p.Val)
		}
		return m
	case *ast.SequenceNode:
		out := make([]any, 0, len(v.Values))
		for _, x := range v.Values {
			out = append(out, d.value(x))
		}
		return out
	case *ast.StringNode:
		return v.Value
	case *ast.LiteralNode:
		return v.Value.Value
	case *ast.IntegerNode:
		switch x := v.Value.(type) {
		case int64:
			return int(x)
		case uint64:
			if x <= 1<<62 {
				return int(x)
			}
			return x
		}
	case *ast.BoolNode:
		return v.Value
	}
	var out any
	if err := yaml.NodeToValue(n, &out); err != nil {
		d.errs = append(d.errs, d.fromYAML(err).(diag.List)...)
		return nil
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
