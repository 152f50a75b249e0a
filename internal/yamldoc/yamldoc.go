// Package yamldoc is the shared positioned-YAML helper of plan and inventory
// files: small helpers over goccy's AST so every problem is reported as a
// positioned diag.Error.
package yamldoc

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/troupe/troupe/internal/diag"
)

// Doc is one source file being decoded; it collects the errors.
type Doc struct {
	File    string
	Src     []byte
	Errs    diag.List
	anchors map[string]ast.Node
}

// Parse parses src into its single document body (nil for an empty file).
func Parse(file string, src []byte) (*Doc, ast.Node, error) {
	d := &Doc{File: file, Src: src, anchors: map[string]ast.Node{}}
	if e := checkSize(file, src); e != nil {
		return d, nil, diag.List{e}
	}
	if e := checkDepth(file, src); e != nil {
		return d, nil, diag.List{e}
	}
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return d, nil, d.FromYAML(err)
	}
	var body ast.Node
	for i, dn := range f.Docs {
		if dn == nil || dn.Body == nil {
			continue
		}
		if i > 0 && body != nil {
			return d, nil, diag.List{d.At(dn.Body, "only one YAML document is allowed per file")}
		}
		body = dn.Body
	}
	if body != nil {
		d.collectAnchors(body)
		if e := d.checkAliases(body); e != nil {
			return d, nil, diag.List{e}
		}
	}
	return d, body, nil
}

// FromYAML turns a goccy error into a positioned error.
func (d *Doc) FromYAML(err error) error {
	var de *diag.Error
	if errors.As(err, &de) {
		if de.File == "" {
			de.File = d.File
			de.Excerpt = diag.Excerpt(d.Src, de.Line, de.Col)
		}
		return diag.List{de}
	}
	if l, ok := diag.As(err); ok {
		return l
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return diag.List{diag.New(d.File, d.Src, p.Line, p.Column, "%s", ye.GetMessage())}
	}
	return diag.List{&diag.Error{File: d.File, Msg: err.Error()}}
}

func (d *Doc) collectAnchors(n ast.Node) {
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

// Pos is where a node starts (1-based line and column).
func Pos(n ast.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		return Pos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok {
		return Pos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// At returns a positioned error at n.
func (d *Doc) At(n ast.Node, format string, args ...any) *diag.Error {
	line, col := Pos(n)
	return diag.New(d.File, d.Src, line, col, format, args...)
}

// Errorf records a positioned error at n.
func (d *Doc) Errorf(n ast.Node, format string, args ...any) {
	d.Errs = append(d.Errs, d.At(n, format, args...))
}

// Resolve unwraps anchors, aliases and tags.
func (d *Doc) Resolve(n ast.Node) ast.Node {
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

// IsNull reports whether n is absent or a YAML null.
func IsNull(n ast.Node) bool {
	if n == nil {
		return true
	}
	_, ok := n.(*ast.NullNode)
	return ok
}

// Pair is one key/value of a mapping.
type Pair struct {
	Key  string
	KeyN ast.Node
	Val  ast.Node // resolved
}

// Mapping returns the pairs of a mapping node in file order; null is an empty
// mapping. what names the thing for the error message.
func (d *Doc) Mapping(n ast.Node, what string) ([]Pair, bool) {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil, true
	}
	var kvs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		kvs = v.Values
	case *ast.MappingValueNode:
		kvs = []*ast.MappingValueNode{v}
	default:
		d.Errorf(n, "%s must be a mapping, got %s", what, Kind(n))
		return nil, false
	}
	out := make([]Pair, 0, len(kvs))
	for _, kv := range kvs {
		if _, ok := kv.Key.(*ast.MergeKeyNode); ok {
			d.Errorf(kv.Key, "merge keys (<<) are not supported")
			continue
		}
		k := kv.Key.GetToken().Value
		if s, ok := d.Resolve(kv.Key).(*ast.StringNode); ok {
			k = s.Value
		}
		out = append(out, Pair{Key: k, KeyN: kv.Key, Val: d.Resolve(kv.Value)})
	}
	return out, true
}

// CheckKeys reports keys not in allowed and returns false when any was found.
func (d *Doc) CheckKeys(ps []Pair, what string, allowed ...string) bool {
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
			d.Errorf(p.KeyN, "unknown key %q in %s%s (expected one of: %s)", p.Key, what, Suggest(p.Key, allowed), strings.Join(allowed, ", "))
		}
	}
	return ok
}

// Suggest returns `; did you mean "x"?` for a close match.
func Suggest(word string, candidates []string) string {
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

// Nearest returns up to n candidates ordered by edit distance to word (ties
// keep the candidates' order). A hierarchical candidate ("a/b/c") is also
// measured by its last segment, so "drain" finds "compilers/drain".
func Nearest(word string, candidates []string, n int) []string {
	type cand struct {
		s string
		d int
	}
	cs := make([]cand, len(candidates))
	for i, c := range candidates {
		d := editDistance(word, c)
		if j := strings.LastIndexByte(c, '/'); j >= 0 {
			d = min(d, editDistance(word, c[j+1:]))
		}
		cs[i] = cand{c, d}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.d - b.d })
	out := make([]string, 0, n)
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.s)
	}
	return out
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

// Kind names a node's type for messages.
func Kind(n ast.Node) string {
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

// Str decodes a string scalar.
func (d *Doc) Str(n ast.Node, what string) (string, bool) {
	switch v := d.Resolve(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	}
	d.Errorf(n, "%s must be a string, got %s", what, Kind(d.Resolve(n)))
	return "", false
}

// Integer decodes an integer scalar.
func (d *Doc) Integer(n ast.Node, what string) (int, bool) {
	if v, ok := d.Resolve(n).(*ast.IntegerNode); ok {
		switch x := v.Value.(type) {
		case int64:
			return int(x), true
		case uint64:
			if x <= 1<<31 {
				return int(x), true
			}
		}
	}
	d.Errorf(n, "%s must be an integer, got %s", what, Kind(d.Resolve(n)))
	return 0, false
}

// Boolean decodes a boolean scalar.
func (d *Doc) Boolean(n ast.Node, what string) (bool, bool) {
	if v, ok := d.Resolve(n).(*ast.BoolNode); ok {
		return v.Value, true
	}
	d.Errorf(n, "%s must be true or false, got %s", what, Kind(d.Resolve(n)))
	return false, false
}

// Duration decodes a positive duration string such as "10s".
func (d *Doc) Duration(n ast.Node, what string) (time.Duration, bool) {
	s, ok := d.Str(n, what)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf(n, "%s: invalid duration %q (use a form like \"10s\" or \"2m\")", what, s)
		return 0, false
	}
	if v <= 0 {
		d.Errorf(n, "%s must be positive, got %q", what, s)
		return 0, false
	}
	return v, true
}

// StrList decodes a list of strings (a single string is a one-element list).
func (d *Doc) StrList(n ast.Node, what string) ([]string, bool) {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil, true
	}
	if _, isStr := n.(*ast.StringNode); isStr {
		s, _ := d.Str(n, what)
		return []string{s}, true
	}
	seq, isSeq := n.(*ast.SequenceNode)
	if !isSeq {
		d.Errorf(n, "%s must be a list of strings, got %s", what, Kind(n))
		return nil, false
	}
	var out []string
	ok := true
	for _, x := range seq.Values {
		s, good := d.Str(x, what+" entry")
		if good {
			out = append(out, s)
		}
		ok = ok && good
	}
	return out, ok
}

// Value converts a node to plain Go data: map[string]any, []any, string,
// int, float64, bool or nil.
func (d *Doc) Value(n ast.Node) any {
	n = d.Resolve(n)
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := d.Mapping(v, "value")
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			m[p.Key] = d.Value(p.Val)
		}
		return m
	case *ast.SequenceNode:
		out := make([]any, 0, len(v.Values))
		for _, x := range v.Values {
			out = append(out, d.Value(x))
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
		d.Errs = append(d.Errs, d.FromYAML(err).(diag.List)...)
		return nil
	}
	return out
}

// SortedKeys returns the keys of m in sorted order.
func SortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
