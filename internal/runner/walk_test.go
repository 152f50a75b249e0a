package runner

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/report"
)

// The peer finder and the run walk a plan the same way: in a role, in a
// block, in a sub-plan, with delegate_to at each level (the block's from
// the sub-plan's rendered params, a step's from the role's include vars
// over its defaults), the hosts FindPeers names, each with the steps that
// need it, are exactly the hosts the run's steps then act on besides their
// targets, and the run reaches none it did not name.
func TestPeerFinderAndRunAgreeOnANestedPlan(t *testing.T) {
	f := setupFiles(t, map[string]string{
		"plans/p.yaml": `name: p
params:
  lb: {type: string, default: lb1}
steps:
  - id: sub
    plan: q
    params: {via: "{{ .params.lb }}", who: web}
`,
		"plans/q.yaml": `name: q
params:
  via: {type: string, required: true}
  who: {type: string, required: true}
steps:
  - id: blk
    targets: "{{ .params.who }}"
    delegate_to: "{{ .params.via }}"
    steps:
      - id: inner
        role: r
        vars: {other: lb2}
`,
		"roles/r.yaml": `name: r
vars: {other: lb9}
steps:
  - id: by-block
    command: 'echo by-block >> $H/ran'
  - id: by-var
    delegate_to: "{{ .vars.other }}"
    command: 'echo by-var >> $H/ran'
  - id: peers
    peer_cmd: {hosts: "{{ .vars.other }},{{ .params.via }}", cmd: 'echo peers >> $H/ran'}
`,
	}, "h1", "h2", "lb1", "lb2", "lb9")
	limit := func(o *Options) { o.Limit, o.Params = "h1,h2", map[string]any{"lb": "lb1"} }

	o := Options{Plan: f.plan, Inventory: f.inv}
	limit(&o)
	found, err := FindPeers(o)
	if err != nil || len(found.Later) > 0 {
		t.Fatalf("FindPeers: %v, later %q", err, found.Later)
	}
	named := map[string][]string{} // host → the steps it was named for
	for _, p := range found.Hosts {
		for _, by := range p.By {
			// "delegate_to in step ID", "peer_cmd in step ID": a step's
			// delegate may be its peer too
			if _, id, _ := strings.Cut(by, " in step "); !slices.Contains(named[p.Host.Name], id) {
				named[p.Host.Name] = append(named[p.Host.Name], id)
			}
		}
	}

	rec, _, err := f.run(context.Background(), limit)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// What ran on each host besides the targets, by step (the commands
	// write their step's name; each host runs each step once per target).
	ids := map[string]string{}
	for key := range rec.results() {
		id, _, _ := strings.Cut(key, " ")
		ids[id[strings.LastIndex(id, "/")+1:]] = id
	}
	acted := map[string][]string{}
	for _, h := range []string{"lb1", "lb2", "lb9"} {
		b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "ran"))
		for _, short := range strings.Fields(string(b)) {
			if id := ids[short]; !slices.Contains(acted[h], id) {
				acted[h] = append(acted[h], id)
			}
		}
	}
	for _, h := range []string{"h1", "h2"} {
		if b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "ran")); len(b) > 0 {
			t.Errorf("%s ran %q itself: every step of the block is delegated", h, b)
		}
	}

	want := map[string][]string{
		"lb1": {"sub/blk/inner/by-block", "sub/blk/inner/peers"},
		"lb2": {"sub/blk/inner/by-var", "sub/blk/inner/peers"},
	}
	for _, got := range []map[string][]string{named, acted} {
		for _, steps := range got {
			slices.Sort(steps)
		}
	}
	if !maps.EqualFunc(acted, want, slices.Equal) {
		t.Errorf("the run acted on %v, want %v", acted, want)
	}
	if !maps.EqualFunc(named, acted, slices.Equal) {
		t.Errorf("FindPeers named %v; the run acted on %v", named, acted)
	}
	if w := rec.kinds(report.Warning); len(w) > 0 {
		t.Errorf("the run reached a host it had not named: %v", w)
	}
}

// Before the run a value read from .registered, even through a role var,
// is not known yet: the step is listed in Later. The finder tells that by
// the template's structure, not its error's text: a template that fails
// for another reason is an error, even when its message reads as a missing
// .registered.
func TestFindPeersTellsNotKnownYetFromBroken(t *testing.T) {
	f := setupFiles(t, map[string]string{
		"plans/p.yaml": `name: p
steps:
  - {id: who, targets: h1, command: echo lb1, register: who}
  - id: blk
    targets: h1
    steps:
      - id: inner
        role: r
        vars: {lb: "{{ trim .registered.who.stdout }}"}
  - id: broken
    targets: h1
    peer_cmd: {hosts: '{{ required "map has no entry for key \"registered\"" (get .host.vars "lb" "") }}', cmd: "true"}
`,
		"roles/r.yaml": `name: r
steps:
  - {id: use, delegate_to: "{{ .vars.lb }}", command: "true"}
`,
	}, "h1", "lb1")
	p, err := FindPeers(Options{Plan: f.plan, Inventory: f.inv, Params: map[string]any{}})
	if len(p.Later) != 1 || !strings.Contains(p.Later[0], "step blk/inner/use: the hosts of delegate_to are named from .registered") {
		t.Errorf("later %q", p.Later)
	}
	if err == nil || !strings.Contains(err.Error(), "step broken: peer_cmd:") {
		t.Errorf("a broken template: want an error naming the step, got %v", err)
	}
}
