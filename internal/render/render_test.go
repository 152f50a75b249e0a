package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func scope() map[string]any {
	return map[string]any{
		"host": map[string]any{"name": "lb.example.com"},
		"vars": map[string]any{
			"flavor":    "debian",
			"alt_names": []any{"puppet", "puppet.example.com"},
			"extra":     map[string]any{"b": 2, "a": []any{"x"}},
		},
		"groups": map[string]any{"compilers": []any{
			map[string]any{"short": "compile1", "address": "10.0.0.11"},
			map[string]any{"short": "compile2", "address": "10.0.0.12"},
		}},
	}
}

func TestFileGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/site.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := File("site.tmpl", string(src), scope())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "site.golden")
	if *update {
		os.WriteFile(golden, out, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("render differs from %s:\n%s", golden, Diff(golden, string(want), string(out)))
	}
	again, _ := File("site.tmpl", string(src), scope())
	if string(again) != string(out) {
		t.Error("rendering is not deterministic")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"{{ .vars.nope }}", `map has no entry for key "nope"`},
		{"{{ required \"heap is required\" .vars.heap_or_nil }}", "map has no entry"},
		{"{{ .vars.flavor", "unclosed action"},
		{"{{ env \"HOME\" }}", `function "env" not defined`},
	} {
		_, err := String(tc.text, scope())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestBool(t *testing.T) {
	for text, want := range map[string]bool{`{{ eq .vars.flavor "debian" }}`: true, "{{ false }}": false, "": false} {
		got, err := Bool(text, scope())
		if err != nil || got != want {
			t.Errorf("%q = %v, %v", text, got, err)
		}
	}
	if _, err := Bool("{{ .vars.flavor }}", scope()); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("non-boolean condition: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "$(x)": "'$(x)'"} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestHas(t *testing.T) {
	data := map[string]any{"vars": map[string]any{"alt_names": []any{"puppet", "puppet.example.com"}, "k": 1},
		"host": map[string]any{"groups": []any{"ca", "compilers"}}}
	for tmpl, want := range map[string]string{
		`{{ has "k" .vars }}`:                "true",
		`{{ has "nope" .vars }}`:             "false",
		`{{ has "compilers" .host.groups }}`: "true",
		`{{ has "compiler" .host.groups }}`:  "false", // a whole item, not a substring
		`{{ has "puppet" .vars.alt_names }}`: "true",
		`{{ has "x" "compilers" }}`:          "false",
	} {
		got, err := String(tmpl, data)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %s", tmpl, got, err, want)
		}
	}
}
