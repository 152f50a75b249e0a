package plan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"text/template"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// pkgAction stands for an action with parts (package, package_facts).
type pkgAction struct {
	Parts map[string]string `yaml:"parts"`
	State string            `yaml:"state"`
}

// wrapActions are the fake actions plus pkg.
type wrapActions struct{ fakeActions }

func (wrapActions) Kinds() []string { return []string{"command", "pkg"} }

func (a wrapActions) Decode(kind string, node ast.Node) (any, error) {
	if kind != "pkg" {
		return a.fakeActions.Decode(kind, node)
	}
	v := &pkgAction{}
	if err := yaml.NodeToValue(node, v, yaml.Strict()); err != nil {
		return nil, err
	}
	return v, nil
}

// loadFiles loads plan p from files (plans/NAME.yaml, roles/NAME.yaml).
func loadFiles(files map[string]string, siteKeys ...string) (*Plan, error) {
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	l := &Loader{FS: fsys, Actions: wrapActions{}, Funcs: template.FuncMap{}, SiteKeys: siteKeys}
	return l.Load("p")
}

func ids(p *Plan) []string {
	var out []string
	_ = p.Walk(func(s *Step, depth int) error {
		out = append(out, fmt.Sprintf("%d:%s", depth, s.ID))
		return nil
	})
	return out
}

const cycleRole = `name: cycle
params:
  drain_timeout: {type: string, default: 10m}
vars: {restart: restarted}
steps:
  - {id: leave, command: "drain {{ .params.drain_timeout }}"}
  - body: the work
  - {id: restart, command: "systemctl {{ .vars.restart }}"}
`

func TestRoleWrapsABody(t *testing.T) {
	p, err := loadFiles(map[string]string{
		"roles/cycle.yaml": cycleRole,
		"plans/p.yaml": `name: p
steps:
  - id: first
    targets: all
    command: "uname"
    register: first
  - id: work
    targets: all
    role: cycle
    vars: {restart: reloaded}
    steps:
      - {id: packages, command: "apt {{ .registered.first.stdout }} {{ .params.drain_timeout }}", register: pkgs}
      - {id: after, command: "{{ .registered.pkgs.stdout }}"}
  - id: empty
    targets: all
    role: cycle
`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0:first", "0:work", "1:work/leave", "1:work/packages", "1:work/after", "1:work/restart",
		"0:empty", "1:empty/leave", "1:empty/restart"}
	if got := ids(p); !reflect.DeepEqual(got, want) {
		t.Errorf("steps %v\nwant  %v", got, want)
	}
	// the body's steps are the plan's: positioned in its file
	if pos := p.Find("work/packages").Pos; pos.File != "embedded:plans/p.yaml" || pos.Line != 12 {
		t.Errorf("body step at %+v", pos)
	}
	if prm := p.Param("drain_timeout"); prm == nil || prm.Default != "10m" {
		t.Errorf("the role's param on the plan: %+v", prm)
	}
}

func TestRoleBodyRefused(t *testing.T) {
	for _, c := range []struct{ name, role, plan, want string }{
		{"no slot", "name: r\nsteps: [{id: a, command: x}]\n",
			"name: p\nsteps: [{id: s, targets: all, role: r, steps: [{id: b, command: y}]}]\n",
			`role "r" has no body slot`},
		{"two slots", "name: r\nsteps: [{body: one}, {body: two}]\n",
			"name: p\nsteps: [{id: s, targets: all, role: r, steps: [{id: b, command: y}]}]\n",
			"a role has one body slot"},
		{"slot in a plan", "name: r\nsteps: [{id: a, command: x}]\n",
			"name: p\nsteps: [{id: s, targets: all, command: x}, {body: mine}]\n",
			"only a role has a body slot"},
		{"a slot with more", "name: r\nsteps: [{body: one, id: x}]\n",
			"name: p\nsteps: [{id: s, targets: all, role: r, steps: [{id: b, command: y}]}]\n",
			"a body slot is `- body: DESCRIPTION` alone"},
		{"an id twice", "name: r\nsteps: [{id: a, command: x}, {body: one}]\n",
			"name: p\nsteps: [{id: s, targets: all, role: r, steps: [{id: a, command: y}]}]\n",
			`duplicate step id "a"`},
		{"an action with steps", "name: r\nsteps: [{id: a, command: x}]\n",
			"name: p\nsteps: [{id: s, targets: all, command: x, steps: [{id: a, command: y}]}]\n",
			"several actions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadFiles(map[string]string{"roles/r.yaml": c.role, "plans/p.yaml": c.plan})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestRoleParams(t *testing.T) {
	role := "name: r\nparams:\n  t: {type: string, default: 5m}\nsteps: [{id: a, command: '{{ .params.t }}'}]\n"
	// read before the role that declares it is included: checked at the end
	p, err := loadFiles(map[string]string{"roles/r.yaml": role,
		"plans/p.yaml": "name: p\nsteps:\n  - {id: x, targets: all, command: '{{ .params.t }}'}\n  - {id: y, targets: all, role: r}\n"})
	if err != nil || p.Param("t") == nil {
		t.Fatalf("%v %+v", err, p)
	}
	// the plan's own declaration wins, with the same type
	p, err = loadFiles(map[string]string{"roles/r.yaml": role,
		"plans/p.yaml": "name: p\nparams: {t: {type: string, default: 1m}}\nsteps: [{id: y, targets: all, role: r}]\n"})
	if err != nil || p.Param("t").Default != "1m" || len(p.Params) != 1 {
		t.Fatalf("%v %+v", err, p.Params)
	}
	for _, c := range []struct{ plan, want string }{
		{"name: p\nparams: {t: {type: int}}\nsteps: [{id: y, targets: all, role: r}]\n", `param "t" is int here but string in the role`},
		{"name: p\nsteps: [{id: y, targets: all, role: r}, {id: z, targets: all, command: '{{ .params.u }}'}]\n", `has no param "u" (it declares: t)`},
		// a var of the param's name would be shadowed by it and do nothing
		{"name: p\nsteps:\n  - {id: y, targets: all, role: r, vars: {t: 4s}}\n", `p.yaml:3:43: step "y": "t" is a param of role "r": the plan takes it (-p t=...`},
	} {
		if _, err := loadFiles(map[string]string{"roles/r.yaml": role, "plans/p.yaml": c.plan}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func TestPackageSets(t *testing.T) {
	plan := `name: p
params:
  v: {type: string, default: ""}
packages:
  server: {server: "{{ .params.v }}", agent: "{{ .params.v }}"}
  db: {db: "{{ .params.v }}", agent: "{{ .params.v }}"}
steps:
  - {id: one, targets: all, pkg: {set: server, state: upgraded}}
  - {id: both, targets: all, pkg: {set: [server, db]}}
`
	p, err := loadFiles(map[string]string{"plans/p.yaml": plan})
	if err != nil {
		t.Fatal(err)
	}
	one := p.Find("one").Action.(*pkgAction)
	if !reflect.DeepEqual(one.Parts, map[string]string{"server": "{{ .params.v }}", "agent": "{{ .params.v }}"}) || one.State != "upgraded" {
		t.Errorf("one: %+v", one)
	}
	if both := p.Find("both").Action.(*pkgAction); len(both.Parts) != 3 {
		t.Errorf("both: %+v", both)
	}
	for _, c := range []struct{ edit, want string }{
		{"set: server, state", "no package set"}, // replaced below
		{`db: {db: "{{ .params.v }}", agent: "9"}`, `part "agent" has different versions in package sets "server" and "db"`},
		{`db: {db: "{{ .params.w }}"}`, `has no param "w"`},
	} {
		src := plan
		switch {
		case strings.HasPrefix(c.edit, "set:"):
			src = strings.Replace(src, "set: server, state", "set: sever, state", 1)
		default:
			src = strings.Replace(src, `db: {db: "{{ .params.v }}", agent: "{{ .params.v }}"}`, c.edit, 1)
		}
		if _, err := loadFiles(map[string]string{"plans/p.yaml": src}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.edit, err, c.want)
		}
	}
}

func TestSiteKeysChecked(t *testing.T) {
	src := "name: p\nsteps: [{id: a, targets: all, command: '{{ .site.ca }} {{ .site.lb_nam }}'}]\n"
	_, err := loadFiles(map[string]string{"plans/p.yaml": src}, "ca", "lb_name")
	if err == nil || !strings.Contains(err.Error(), `.site.lb_nam: the site has ca, lb_name (did you mean "lb_name"?)`) {
		t.Errorf("got %v", err)
	}
	if _, err := loadFiles(map[string]string{"plans/p.yaml": strings.Replace(src, "lb_nam ", "lb_name ", 1)}, "ca", "lb_name"); err != nil {
		t.Error(err)
	}
}
