package step

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// firstPair parses "kind: body" and returns the key and the body node.
func firstPair(t *testing.T, src string) (string, ast.Node) {
	t.Helper()
	f, err := parser.ParseBytes([]byte(src), 0)
	if err != nil {
		t.Fatal(err)
	}
	var mv *ast.MappingValueNode
	switch b := f.Docs[0].Body.(type) {
	case *ast.MappingNode:
		mv = b.Values[0]
	case *ast.MappingValueNode:
		mv = b
	default:
		t.Fatalf("unexpected body %T", b)
	}
	return mv.Key.GetToken().Value, mv.Value
}

func TestDecodeShorthandAndStrictness(t *testing.T) {
	for _, tc := range []struct{ src, want, err string }{
		{"command: uptime\n", "uptime", ""},
		{"command: >-\n  echo a\n  b\n", "echo a b", ""},
		{"command: |\n  echo a\n  echo b\n", "echo a\necho b\n", ""},
		{"command: {cmd: id}\n", "id", ""},
		{"command: {cmd: id, sudoo: true}\n", "", `unknown field "sudoo"`},
		{"upload: just-a-string\n", "", "want a mapping, not a string"},
		{"upload: {dest: /x}\n", "", "set exactly one of src and content"},
	} {
		kind, body := firstPair(t, tc.src)
		a, err := Registry{}.Decode(kind, body)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want error %q", tc.src, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if got := a.(*Command).Cmd; got != tc.want {
			t.Errorf("%q: cmd %q, want %q", tc.src, got, tc.want)
		}
	}
}
