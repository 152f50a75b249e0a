package yamldoc

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
)

// parse parses src and returns its top-level pairs, failing the test on a
// parse error.
func parse(t *testing.T, src string) (*Doc, []Pair) {
	t.Helper()
	d, body, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	ps, ok := d.Mapping(body, "the file")
	if !ok {
		t.Fatalf("not a mapping: %v", d.Errs)
	}
	return d, ps
}

func val(ps []Pair, k string) ast.Node { return ps[indexOf(ps, k)].Val }

func indexOf(ps []Pair, k string) int {
	for i, p := range ps {
		if p.Key == k {
			return i
		}
	}
	panic("no key " + k)
}

// errs is the file:line:col and message of each recorded error.
func errs(d *Doc) []string {
	var out []string
	for _, e := range d.Errs {
		out = append(out, e.Position()+": "+e.Msg)
	}
	return out
}

func TestParse(t *testing.T) {
	d, body, err := Parse("empty.yaml", []byte("# only a comment\n"))
	if err != nil || body != nil || d.File != "empty.yaml" {
		t.Errorf("empty file: body %v, err %v", body, err)
	}
	_, _, err = Parse("two.yaml", []byte("a: 1\n---\nb: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "two.yaml:3:1: only one YAML document is allowed per file") {
		t.Errorf("two documents: %v", err)
	}
	_, _, err = Parse("bad.yaml", []byte("a: [1, 2\n"))
	var l diag.List
	if !errors.As(err, &l) || len(l) != 1 || l[0].File != "bad.yaml" || l[0].Line == 0 {
		t.Errorf("syntax error must be positioned: %#v", err)
	}
}

func TestLimits(t *testing.T) {
	big := "a: " + strings.Repeat("x", MaxFileSize) + "\n"
	if _, _, err := Parse("big.yaml", []byte(big)); err == nil || !strings.Contains(err.Error(), "big.yaml:1:") || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("big file: %.200v", err)
	}
	deep := "a: " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n"
	if _, _, err := Parse("deep.yaml", []byte(deep)); err == nil || !strings.Contains(err.Error(), "nested more than 256 deep") {
		t.Errorf("deep flow nesting: %.200v", err)
	}
	dash := strings.Repeat("- ", MaxDepth+1) + "x\n"
	if _, _, err := Parse("dash.yaml", []byte(dash)); err == nil || !strings.Contains(err.Error(), "nested more than 256 deep") {
		t.Errorf("deep block nesting: %.200v", err)
	}
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		laughs += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	if _, _, err := Parse("laughs.yaml", []byte(laughs)); err == nil {
		t.Error("exponential aliases must be refused")
	}
	// ReadFile keeps one byte past the limit, so Parse can refuse the file.
	fsys := fstest.MapFS{"big.yaml": {Data: []byte(big)}}
	b, err := ReadFile(fsys, "big.yaml")
	if err != nil || len(b) != MaxFileSize+1 {
		t.Errorf("ReadFile: %d bytes, %v", len(b), err)
	}
}

func TestMappingAndResolve(t *testing.T) {
	d, ps := parse(t, `z: 1
a: &anchor {k: v}
b: *anchor
"quoted key": x
n: ~
`)
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	if strings.Join(keys, ",") != "z,a,b,quoted key,n" {
		t.Errorf("keys in file order: %v", keys)
	}
	for _, k := range []string{"a", "b"} {
		inner, ok := d.Mapping(val(ps, k), k)
		if !ok || len(inner) != 1 || inner[0].Key != "k" {
			t.Errorf("%s: anchor or alias not resolved: %v %v", k, inner, ok)
		}
	}
	if inner, ok := d.Mapping(val(ps, "n"), "n"); !ok || inner != nil {
		t.Errorf("null is an empty mapping: %v %v", inner, ok)
	}
	if _, ok := d.Mapping(val(ps, "z"), "z"); ok {
		t.Error("an integer is not a mapping")
	}
	if got := errs(d); len(got) != 1 || got[0] != "f.yaml:1:4: z must be a mapping, got an integer" {
		t.Errorf("errors: %q", got)
	}
	if line, col := Pos(val(ps, "quoted key")); line != 4 || col != 15 {
		t.Errorf("Pos: %d:%d", line, col)
	}
}

func TestMergeKeyRefused(t *testing.T) {
	d, ps := parse(t, "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n")
	if inner, _ := d.Mapping(val(ps, "m"), "m"); len(inner) != 1 || inner[0].Key != "y" {
		t.Errorf("pairs beside the merge key: %v", inner)
	}
	if got := errs(d); len(got) != 1 || got[0] != "f.yaml:3:3: merge keys (<<) are not supported" {
		t.Errorf("errors: %q", got)
	}
}

func TestCheckKeys(t *testing.T) {
	d, ps := parse(t, "name: x\nstesp: []\n")
	if d.CheckKeys(ps, "a plan", "name", "steps") {
		t.Error("an unknown key must fail")
	}
	want := `f.yaml:2:1: unknown key "stesp" in a plan (did you mean "steps"?) (expected one of: name, steps)`
	if got := errs(d); len(got) != 1 || got[0] != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestScalars(t *testing.T) {
	d, ps := parse(t, `s: text
lit: |
  two
  lines
i: 42
big: 18446744073709551615
b: true
dur: 90s
neg: -1s
list: [a, b]
one: a
mixed: [a, 1]
`)
	if v, ok := d.Str(val(ps, "s"), "s"); !ok || v != "text" {
		t.Errorf("Str: %q %v", v, ok)
	}
	if v, ok := d.Str(val(ps, "lit"), "lit"); !ok || v != "two\nlines\n" {
		t.Errorf("Str literal: %q %v", v, ok)
	}
	if v, ok := d.Integer(val(ps, "i"), "i"); !ok || v != 42 {
		t.Errorf("Integer: %d %v", v, ok)
	}
	if v, ok := d.Boolean(val(ps, "b"), "b"); !ok || !v {
		t.Errorf("Boolean: %v %v", v, ok)
	}
	if v, ok := d.Duration(val(ps, "dur"), "dur"); !ok || v != 90*time.Second {
		t.Errorf("Duration: %v %v", v, ok)
	}
	if v, ok := d.StrList(val(ps, "list"), "list"); !ok || !reflect.DeepEqual(v, []string{"a", "b"}) {
		t.Errorf("StrList: %v %v", v, ok)
	}
	if v, ok := d.StrList(val(ps, "one"), "one"); !ok || !reflect.DeepEqual(v, []string{"a"}) {
		t.Errorf("StrList of one string: %v %v", v, ok)
	}
	if len(d.Errs) != 0 {
		t.Fatalf("unexpected errors: %q", errs(d))
	}

	d.Str(val(ps, "i"), "s")
	d.Integer(val(ps, "s"), "i")
	d.Integer(val(ps, "big"), "big")
	d.Boolean(val(ps, "s"), "b")
	d.Duration(val(ps, "s"), "dur")
	d.Duration(val(ps, "neg"), "neg")
	d.StrList(val(ps, "i"), "list")
	d.StrList(val(ps, "mixed"), "mixed")
	want := []string{
		"f.yaml:5:4: s must be a string, got an integer",
		"f.yaml:1:4: i must be an integer, got a string",
		"f.yaml:6:6: big must be an integer, got an integer",
		"f.yaml:1:4: b must be true or false, got a string",
		`f.yaml:1:4: dur: invalid duration "text" (use a form like "10s" or "2m")`,
		`f.yaml:9:6: neg must be positive, got "-1s"`,
		"f.yaml:5:4: list must be a list of strings, got an integer",
		"f.yaml:12:12: mixed entry must be a string, got an integer",
	}
	if got := errs(d); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestValue(t *testing.T) {
	d, body, err := Parse("f.yaml", []byte(`m: {a: 1, b: [x, 2.5, true, ~]}
big: 18446744073709551615
ref: &r hello
alias: *r
`))
	if err != nil {
		t.Fatal(err)
	}
	got := d.Value(body)
	want := map[string]any{
		"m":     map[string]any{"a": 1, "b": []any{"x", 2.5, true, nil}},
		"big":   uint64(18446744073709551615),
		"ref":   "hello",
		"alias": "hello",
	}
	if !reflect.DeepEqual(got, want) || len(d.Errs) != 0 {
		t.Errorf("Value:\n got %#v\nwant %#v\n%v", got, want, d.Errs)
	}
}

func TestSuggestAndNearest(t *testing.T) {
	if got := Suggest("tagrets", []string{"name", "targets", "when"}); got != ` (did you mean "targets"?)` {
		t.Errorf("Suggest: %q", got)
	}
	if got := Suggest("zzzzzz", []string{"name", "targets"}); got != "" {
		t.Errorf("Suggest far: %q", got)
	}
	ids := []string{"setup", "compilers/drain", "compilers/upgrade", "dran"}
	if got := Nearest("drain", ids, 2); !reflect.DeepEqual(got, []string{"compilers/drain", "dran"}) {
		t.Errorf("Nearest: %v", got)
	}
	if got := Nearest("x", ids[:1], 3); !reflect.DeepEqual(got, []string{"setup"}) {
		t.Errorf("Nearest with fewer candidates: %v", got)
	}
}

func TestKind(t *testing.T) {
	_, ps := parse(t, "m: {}\nl: []\ni: 1\nf: 1.5\nb: false\ns: x\nn: ~\n")
	want := map[string]string{"m": "a mapping", "l": "a list", "i": "an integer", "f": "a number", "b": "a boolean", "s": "a string", "n": "null"}
	for k, w := range want {
		if got := Kind(val(ps, k)); got != w {
			t.Errorf("Kind(%s) = %q, want %q", k, got, w)
		}
	}
	if Kind(nil) != "null" {
		t.Error("Kind(nil)")
	}
}
