package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A later figure of the same test and name replaces the earlier; every
// figure shows with its unit, its test's reproduce command and commit.
func TestRender(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "e2e.jsonl")
	os.WriteFile(in, []byte(`{"time":"2026-12-07T04:00:00Z","commit":"abc123","machine":"linux/amd64, 2 CPUs","test":"TestBootstrap/bookworm","name":"first bootstrap","value":200,"unit":"s","reproduce":"go test -run 'TestBootstrap/bookworm$' ./internal/e2e"}
{"time":"2026-12-07T04:01:00Z","commit":"abc123","machine":"linux/amd64, 2 CPUs","test":"TestBootstrap/bookworm/upgrade","name":"agent runs failed","value":0,"unit":"count","reproduce":"r"}
{"time":"2026-12-07T05:00:00Z","commit":"def456","machine":"linux/amd64, 2 CPUs","test":"TestBootstrap/bookworm","name":"first bootstrap","value":12.34,"unit":"s","reproduce":"go test -run 'TestBootstrap/bookworm$' ./internal/e2e"}
`), 0o644)
	figs, err := read(in)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	render(&b, figs)
	out := b.String()
	for _, want := range []string{"| first bootstrap | 12.3 s |", "| agent runs failed | 0 |", "## TestBootstrap/bookworm/upgrade",
		"Reproduce: `go test -run 'TestBootstrap/bookworm$' ./internal/e2e`", "def456"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "3m20s") || strings.Count(out, "| first bootstrap |") != 1 {
		t.Errorf("the earlier figure was not replaced:\n%s", out)
	}
	os.WriteFile(in, []byte("{not json\n"), 0o644)
	if _, err := read(in); err == nil || !strings.Contains(err.Error(), "e2e.jsonl:1:") {
		t.Errorf("a bad line: %v, want its file:line", err)
	}
}
