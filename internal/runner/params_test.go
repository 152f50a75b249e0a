package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/troupe/troupe/internal/transport"
)

// countDials makes the fixture's Dial count its calls.
func countDials(f *fixture, n *atomic.Int32) func(*Options) {
	return func(o *Options) {
		dial := o.Dial
		o.Dial = func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
			n.Add(1)
			return dial(ctx, cfg)
		}
	}
}

func both(mods ...func(*Options)) func(*Options) {
	return func(o *Options) {
		for _, m := range mods {
			m(o)
		}
	}
}

// A sub-plan's templated params are rendered in the caller's scope (its
// params) when the sub-plan is entered, converted to the declared type, and
// the sub-plan's defaults fill in what the include does not give.
func TestSubPlanParamsAreRendered(t *testing.T) {
	f := setupFiles(t, map[string]string{
		"plans/p.yaml": `name: p
params:
  version: {type: string, default: "1.2"}
  count: {type: int, default: 3}
steps:
  - id: sub
    plan: q
    params: {v: "ver-{{ .params.version }}", n: "{{ .params.count }}", lit: 7}
`,
		"plans/q.yaml": `name: q
params:
  v: {type: string, required: true}
  n: {type: int, required: true}
  lit: {type: int, required: true}
  d: {type: string, default: dflt}
steps:
  - id: write
    targets: "h{{ sub .params.n 2 }}"
    command: 'echo "{{ .params.v }} {{ sub .params.n .params.lit }} {{ .params.d }}" > $H/seen'
`,
	}, "h1", "h2")
	params := func(o *Options) { o.Params = map[string]any{"version": "1.2", "count": 3} }
	if _, _, err := f.run(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.hostDir("h1"), "seen"))
	if got := strings.TrimSpace(string(b)); err != nil || got != "ver-1.2 -4 dflt" {
		t.Errorf("the sub-plan saw %q (%v), want the rendered, typed params and its default: %q", got, err, "ver-1.2 -4 dflt")
	}
	if exists(filepath.Join(f.hostDir("h2"), "seen")) {
		t.Error("the sub-plan's targets were not rendered with its own params")
	}
	// a rendered value that is not of the declared type is refused before
	// anything connects
	var dials atomic.Int32
	_, _, err = f.run(context.Background(), both(countDials(f, &dials), func(o *Options) {
		o.Params = map[string]any{"version": "1.2", "count": "three"}
	}))
	var bad *InputError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), `"three" is not an integer`) || dials.Load() != 0 {
		t.Errorf("a rendered param of the wrong type: want an InputError before any dial, got %v (%d dials)", err, dials.Load())
	}
}

// {host: NAME} selects exactly the inventory host of that name: a group's
// name, a glob or an unknown name is refused before anything connects, and
// an empty name selects nothing.
func TestTargetsHostIsExactlyOneHost(t *testing.T) {
	f := setup(t, `name: p
params:
  who: {type: string}
steps:
  - id: one
    targets: {host: "{{ .params.who }}"}
    command: 'echo "{{ .host.name }}" >> $H/by'
`, "h1", "h2")
	read := func(h string) string { b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "by")); return string(b) }
	for _, who := range []string{"web", "h*", "all", "h1,h2", "nosuch"} {
		var dials atomic.Int32
		_, _, err := f.run(context.Background(), both(countDials(f, &dials), func(o *Options) { o.Params = map[string]any{"who": who} }))
		var bad *InputError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), "no host of that name") || dials.Load() != 0 {
			t.Errorf("{host: %q}: want a refusal before any dial, got %v (%d dials)", who, err, dials.Load())
		}
	}
	if read("h1")+read("h2") != "" {
		t.Fatal("a refused run ran")
	}
	if _, _, err := f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"who": "h2"} }); err != nil {
		t.Fatal(err)
	}
	if read("h1") != "" || read("h2") != "h2\n" {
		t.Errorf("{host: h2} ran on h1 %q, h2 %q", read("h1"), read("h2"))
	}
	if _, _, err := f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"who": "h2"}; o.Limit = "h1" }); err == nil {
		t.Error("{host: h2} outside --limit h1 selected a host")
	}
}

// --start-at past a block does not evaluate the block's when, serial or
// vars (they read results of the steps skipped before it: revoke's
// ca/backup); a start point after which a step reads the unknown result
// of a skipped step is refused before anything connects, naming both.
func TestStartAtPastBlocksThatReadSkippedResults(t *testing.T) {
	f := setupFiles(t, map[string]string{
		"plans/p.yaml": `name: p
steps:
  - id: paths
    targets: web
    command: echo '{"dir":"d","batch":1}'
    register: paths
  - id: ca
    targets: web
    when: '{{ eq .registered.paths.data.dir "d" }}'
    serial: '{{ .registered.paths.data.batch }}'
    steps:
      - id: inner
        role: r
        vars: {dir: "{{ .registered.paths.data.dir }}"}
  - id: changed
    targets: web
    command: 'echo "{{ .registered.paths.changed }}" > $H/changed'
  - id: after
    targets: web
    command: 'touch $H/after'
`,
		"roles/r.yaml": `name: r
steps:
  - id: use
    command: 'echo "{{ .vars.dir }}" > $H/dir'
`,
	}, "h1")
	rec, _, err := f.run(context.Background(), func(o *Options) { o.StartAt = "changed" })
	if err != nil {
		t.Fatalf("--start-at past the block: %v", err)
	}
	if got := rec.results()["ca/inner/use h1"]; !strings.HasPrefix(got, "skipped before --start-at") {
		t.Errorf("the block's step: %q, want skipped before --start-at", got)
	}
	b, _ := os.ReadFile(filepath.Join(f.hostDir("h1"), "changed"))
	if strings.TrimSpace(string(b)) != "false" || !exists(filepath.Join(f.hostDir("h1"), "after")) || exists(filepath.Join(f.hostDir("h1"), "dir")) {
		t.Errorf("changed=%q, after ran %v, the block ran %v", b, exists(filepath.Join(f.hostDir("h1"), "after")), exists(filepath.Join(f.hostDir("h1"), "dir")))
	}
	for _, at := range []string{"ca", "ca/inner/use"} {
		var dials atomic.Int32
		_, _, err := f.run(context.Background(), both(countDials(f, &dials), func(o *Options) { o.StartAt = at }))
		var bad *InputError
		if !errors.As(err, &bad) || dials.Load() != 0 ||
			!strings.Contains(err.Error(), `reads .registered.paths.data, which step "paths" registers`) ||
			!strings.Contains(err.Error(), "start at or before paths") || strings.Contains(err.Error(), "map has no entry") {
			t.Errorf("--start-at %s: want a clear refusal before any dial, got %v (%d dials)", at, err, dials.Load())
		}
	}
	// from the first step everything is known
	if _, _, err := f.run(context.Background(), func(o *Options) { o.StartAt = "paths" }); err != nil {
		t.Errorf("--start-at paths: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.hostDir("h1"), "dir")); strings.TrimSpace(string(b)) != "d" {
		t.Errorf("the block did not run from the start: %q", b)
	}
}
