package plan

import (
	"bytes"
	"errors"
	"fmt"
	goldenfiles "github.com/troupe/troupe/internal/golden"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
)

const fixtures = "../../fixtures"

// Fake actions: the real registry lives in package step.
type commandAction struct {
	Cmd   string `yaml:"cmd"`
	Chdir string `yaml:"chdir"`
}

type uploadAction struct {
	Src  string `yaml:"src"`
	Dest string `yaml:"dest"`
	Mode string `yaml:"mode"`
}

type messageAction struct {
	Text string `yaml:"text"`
}

func (m *messageAction) String() string { return "Say " + m.Text }

type fakeActions struct{}

func (fakeActions) Kinds() []string { return []string{"command", "upload", "message"} }

func (fakeActions) Decode(kind string, node ast.Node) (any, error) {
	if s, ok := node.(*ast.StringNode); ok {
		switch kind {
		case "command":
			return &commandAction{Cmd: s.Value}, nil
		case "message":
			return &messageAction{Text: s.Value}, nil
		}
	}
	var v any
	switch kind {
	case "command":
		v = &commandAction{}
	case "upload":
		v = &uploadAction{}
	case "message":
		v = &messageAction{}
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if err := yaml.NodeToValue(node, v, yaml.Strict()); err != nil {
		return nil, err
	}
	return v, nil
}

func newLoader() *Loader {
	return &Loader{
		FS:      os.DirFS(filepath.Join(fixtures, "plans")),
		Actions: fakeActions{},
		Funcs:   template.FuncMap{"upper": strings.ToUpper},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfiles.Check(t, filepath.Join(fixtures, "golden", name), got)
}

func TestLoadGood(t *testing.T) {
	p, err := newLoader().Load("upgrade-compilers")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "upgrade-compilers" || p.File != "embedded:plans/upgrade-compilers.yaml" || len(p.Params) != 7 {
		t.Fatalf("plan = %+v", p)
	}
	wantParams := map[string]any{"db_password": "hunter2", "batch": 1, "dry": false,
		"extra_packages": []any{"git", "curl"}, "labels": map[string]any{"tier": "prod"}}
	for name, def := range wantParams {
		if got := p.Param(name).Default; !reflect.DeepEqual(got, def) {
			t.Errorf("default of %s = %#v, want %#v", name, got, def)
		}
	}
	if v := p.Param("version"); !v.Required || v.Pos != (Pos{File: p.File, Line: 4, Col: 3}) {
		t.Errorf("version = %+v", v)
	}

	var ids []string
	_ = p.Walk(func(s *Step, depth int) error {
		ids = append(ids, fmt.Sprintf("%d:%s", depth, s.ID))
		return nil
	})
	want := []string{"0:preflight", "1:preflight/disk", "1:preflight/say", "0:facts", "0:compilers",
		"1:compilers/drain", "2:compilers/drain/disable", "2:compilers/drain/wait", "1:compilers/upgrade",
		"1:compilers/notify", "0:report"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("walk = %v\nwant %v", ids, want)
	}

	pre := p.Find("preflight")
	if pre.Source != "role:preflight" || pre.Kind != "" || pre.Name != "Check every host" ||
		!reflect.DeepEqual(pre.Vars, map[string]any{"min_disk": "2g", "greeting": "hello {{ .params.version }}"}) ||
		!reflect.DeepEqual(pre.Defaults, map[string]any{"min_disk": "1g", "motd": "checked for {{ .params.version }}"}) {
		t.Errorf("preflight = %+v", pre)
	}
	drain := p.Find("compilers/drain")
	if drain.Source != "plan:drain" || !reflect.DeepEqual(drain.Params, map[string]any{"backend": "compilers", "wait": 30}) || drain.Name != "Plan drain" {
		t.Errorf("drain = %+v", drain)
	}
	up := p.Find("compilers/upgrade")
	if up.Kind != "command" || up.Retries != 3 || up.Delay != 5*time.Second || up.Timeout != 10*time.Minute ||
		up.Sudo == nil || !*up.Sudo || up.Register != "upgrade_out" || up.Pos != (Pos{File: p.File, Line: 28, Col: 9}) ||
		up.Name != "Command (upgrade)" {
		t.Errorf("upgrade = %+v", up)
	}
	if a, ok := up.Action.(*commandAction); !ok || a.Chdir != "/tmp" {
		t.Errorf("upgrade action = %#v", up.Action)
	}
	if c := p.Find("compilers"); c.Kind != "" || len(c.Steps) != 3 || c.Serial != "1" || c.MaxFailures != "10%" || c.Targets != "compilers,!canary" {
		t.Errorf("compilers = %+v", c)
	}
	if n := p.Find("compilers/notify"); !n.RunOnce || !n.IgnoreErrors || !strings.HasPrefix(n.Name, "Say upgraded") {
		t.Errorf("notify = %+v", n)
	}
	if p.Find("nope") != nil || p.Find("drain") != nil {
		t.Error("Find of unknown id")
	}

	var b bytes.Buffer
	p.Tree(&b)
	if strings.Contains(b.String(), "hunter2") {
		t.Error("secret default shown")
	}
	golden(t, "plan_tree.txt", b.String())
}

func TestWalkStops(t *testing.T) {
	p, err := newLoader().Load("upgrade-compilers")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	n := 0
	err = p.Walk(func(s *Step, _ int) error {
		n++
		if s.ID == "compilers" {
			return ErrSkip
		}
		if s.ID == "report" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 6 {
		t.Errorf("err=%v n=%d", err, n)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // "line:col: message" of each error
	}{
		{"keys.yaml", []string{
			`keys.yaml:5:5: unknown key "seriall" in step "one" (did you mean "serial"?): not a step control or an action (actions: command, upload, message)`,
			`keys.yaml:8:5: step "both" has several actions [command upload]; use exactly one`,
			`keys.yaml:9:5: step "nothing" has no action: expected one of command, upload, message, or steps, role, plan`,
			`keys.yaml:11:9: step id "Bad_ID" must be kebab-case (lower-case letters, digits and single dashes)`,
			`keys.yaml:13:9: duplicate step id "one" (first used at 3:9)`,
			`keys.yaml:15:5: step has no id (a kebab-case name unique within its block)`,
			`keys.yaml:18:5: "vars" is only allowed on a role include, not on step "vars-here" (a command step)`,
			`keys.yaml:20:5: "register" applies to action steps only, not to step "blk" (a block)`,
			`keys.yaml:25:13: step "counts" serial must be 1 or more, got 0`,
			`keys.yaml:26:19: step "counts" max_failures must be between 0 and 100%, got "120%"`,
			`keys.yaml:27:14: step "counts" retries must be 0 or more, got -1`,
			`keys.yaml:28:12: step "counts" delay: invalid duration "5 minutes" (use a form like "30s" or "5m")`,
			`keys.yaml:29:14: step "counts" timeout must be positive, got "0s"`,
			`keys.yaml:32:15: step "regs" register: "Bad-Name" is not an identifier ([a-z_][a-z0-9_]*)`,
			`keys.yaml:38:15: step "reg3" register: "out2" is already registered at 35:15`,
			`keys.yaml:40:12: step "empty" has no steps`,
			`keys.yaml:42:5: unknown key "comand" in step "typo" (did you mean "command"?): not a step control or an action (actions: command, upload, message)`,
		}},
		{"params.yaml", []string{
			`params.yaml:3:19: param "version": unknown type "strng" (expected one of: string, int, bool, list, map, secret, certname, serial)`,
			`params.yaml:4:31: default of param "count" must be an integer (type int), got a string`,
			`params.yaml:5:31: default of param "flag" must be true or false (type bool), got a string`,
			`params.yaml:6:32: default of param "hosts" must be a list (type list), got a mapping`,
			`params.yaml:7:49: param "name" is required and has a default; use one or the other`,
			`params.yaml:8:32: default of param "ver" must be a string (type string), got a number; quote it`,
			`params.yaml:9:21: unknown key "descr" in param "opts" (expected one of: type, description, required, default)`,
			`params.yaml:10:3: invalid param name "bad-name" (use letters, digits and '_'; it is used as .params.bad-name)`,
			`params.yaml:11:35: default of param "cert": "agents;reissue=true" is not a certname: Puppet allows lower-case letters, digits, '.', '-' and '_'`,
			`params.yaml:12:35: default of param "dash": certname "-x" starts with '-'`,
			`params.yaml:13:32: default of param "ser": ".*" is not a certificate serial: hex digits, as in 0x1F, 1f or 1f:a0`,
			`params.yaml:14:33: default of param "zero": serial "0x00" is zero: no certificate has it`,
		}},
		{"templates.yaml", []string{
			`templates.yaml:6:14: invalid template: unclosed action`,
			`templates.yaml:8:14: invalid template: function "nosuchfunc" not defined`,
			`templates.yaml:10:14: template references .params.verison but plan "bad-templates" has no param "verison" (it declares: version) (did you mean "version"?)`,
			`templates.yaml:12:11: template references .registered.later but no earlier step registers "later" (registered so far: none)`,
			`templates.yaml:13:14: template references .params.nope but plan "bad-templates" has no param "nope" (it declares: version)`,
			`templates.yaml:18:14: template references .params.z but plan "bad-templates" has no param "z" (it declares: version)`,
			`templates.yaml:22:13: template references .params.missing but plan "bad-templates" has no param "missing" (it declares: version)`,
			`templates.yaml:24:14: template references .params.where but plan "bad-templates" has no param "where" (it declares: version)`,
			`templates.yaml:27:14: step "host-targets" targets reads .host: it is rendered before any host is in scope, with .params alone`,
			`templates.yaml:30:14: step "exact" targets reads .vars: it is rendered before any host is in scope, with .params alone`,
			`templates.yaml:30:38: unknown key "hots" in step "exact" targets (did you mean "host"?) (expected one of: host)`,
		}},
		{"includes.yaml", []string{
			`includes.yaml:6:11: step "no-role": unknown role "nosuch" (roles: cycle-a, cycle-b, preflight)`,
			`includes.yaml:10:11: step "sub": plan "drain" requires param "backend" (string): HAProxy backend`,
			`includes.yaml:11:20: param "wait" of plan "drain" must be an integer (type int), got a string`,
			`includes.yaml:11:27: step "sub": plan "drain" has no param "extra" (it declares: backend, wait)`,
			`includes.yaml:14:54: template references .params.nope but plan "bad-includes" has no param "nope" (it declares: version)`,
			`includes.yaml:17:23: step "sub-host" param "backend" reads .host: it is rendered before any host is in scope, with .params alone`,
			`includes.yaml:21:11: step "no-plan": unknown plan "nosuch" (plans: drain, upgrade-compilers)`,
			`cycle-b.yaml:3:11: include cycle: role:cycle-a -> role:cycle-b -> role:cycle-a`,
			`loop.yaml:4:11: include cycle: plan:loop.yaml -> plan:loop.yaml`,
		}},
		{"actions.yaml", []string{
			`actions.yaml:4:24: step "cmd" command: unknown field "chdr"`,
			`actions.yaml:6:37: step "up" upload: cannot unmarshal []interface {} into Go struct field uploadAction.Mode of type string`,
			`actions.yaml:8:14: step "msg" message: sequence was used where mapping is expected`,
		}},
		{"syntax.yaml", []string{
			`syntax.yaml:5:4: value is not allowed in this context`,
		}},
		// A block that needs its own hosts, with none: it would run nothing.
		{"untargeted.yaml", []string{
			`untargeted.yaml:5:9: step "outer/blk": a block with when or serial needs targets of its own (or an enclosing block's)`,
			`untargeted.yaml:9:5: step "rolling": a block with when or serial needs targets of its own (or an enclosing block's)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := newLoader().Load(filepath.Join(fixtures, "plans", "bad", tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			list, ok := diag.As(err)
			if !ok {
				t.Fatalf("not positioned: %v", err)
			}
			var got []string
			for _, e := range list {
				got = append(got, fmt.Sprintf("%s:%d:%d: %s", filepath.Base(e.File), e.Line, e.Col, e.Msg))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			golden(t, "plan_"+strings.TrimSuffix(tt.file, ".yaml")+".txt", err.Error()+"\n")
		})
	}
}

func TestBindParams(t *testing.T) {
	p, err := newLoader().Load("upgrade-compilers")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		given   map[string]string
		want    map[string]any
		wantErr []string
	}{
		{
			name:  "defaults and zero values",
			given: map[string]string{"version": "8.4.0"},
			want: map[string]any{"version": "8.4.0", "db_password": "hunter2", "batch": 1, "dry": false,
				"extra_packages": []any{"git", "curl"}, "labels": map[string]any{"tier": "prod"}, "note": ""},
		},
		{
			name: "conversions",
			given: map[string]string{"version": "8.4.0", "batch": " 3", "dry": "true", "extra_packages": "vim, jq",
				"labels": `{"tier": "dev", "n": 2, "l": [1.5, 2]}`, "db_password": "x", "note": "n"},
			want: map[string]any{"version": "8.4.0", "db_password": "x", "batch": 3, "dry": true,
				"extra_packages": []any{"vim", "jq"}, "labels": map[string]any{"tier": "dev", "n": 2, "l": []any{1.5, 2}}, "note": "n"},
		},
		{
			name:  "json list and empty list",
			given: map[string]string{"version": "1", "extra_packages": `["a", 1, true]`},
			want: map[string]any{"version": "1", "db_password": "hunter2", "batch": 1, "dry": false,
				"extra_packages": []any{"a", 1, true}, "labels": map[string]any{"tier": "prod"}, "note": ""},
		},
		{
			name:    "missing required",
			given:   map[string]string{},
			wantErr: []string{`missing required param "version" (string): Puppet Server version to install`},
		},
		{
			name:  "bad values and unknown",
			given: map[string]string{"version": "1", "batch": "two", "dry": "maybe", "labels": "[1]", "extra_packages": "[1,", "colour": "red"},
			wantErr: []string{
				`unknown param "colour": plan "upgrade-compilers" declares version, db_password, batch, dry, extra_packages, labels, note`,
				`param "batch" (int): "two" is not an integer`,
				`param "dry" (bool): "maybe" is not true or false`,
				`param "extra_packages" (list): invalid JSON array: unexpected end of JSON input`,
				`param "labels" (map): expected a JSON object like {"key": "value"}, got "[1]"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.BindParams(tt.given)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, got %v", got)
				}
				if want := strings.Join(tt.wantErr, "\n"); err.Error() != want {
					t.Errorf("err:\n%v\nwant:\n%s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
	if got := p.SecretParams(); !reflect.DeepEqual(got, []string{"db_password"}) {
		t.Errorf("SecretParams = %v", got)
	}
}

func TestCheckTargets(t *testing.T) {
	p, err := newLoader().Load(filepath.Join(fixtures, "plans", "bad", "targets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var checked []string
	known := map[string]bool{"compilers": true}
	err = CheckTargets(p, func(expr string) error {
		checked = append(checked, expr)
		if !known[expr] {
			return fmt.Errorf("unknown host or group %q", expr)
		}
		return nil
	})
	if want := []string{"compilerz", "compilers", "nothing,!all"}; !reflect.DeepEqual(checked, want) {
		t.Errorf("checked %v, want %v (templates are skipped)", checked, want)
	}
	list, ok := diag.As(err)
	if !ok || len(list) != 2 {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg))
	}
	want := []string{
		`6:14: step "a": targets "compilerz": unknown host or group "compilerz"`,
		`12:18: step "b/c": targets "nothing,!all": unknown host or group "nothing,!all"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	golden(t, "plan_targets.txt", err.Error()+"\n")
}

func TestList(t *testing.T) {
	got, err := newLoader().List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Summary{
		{Name: "drain", Description: "Take a backend out of the load balancer", File: "embedded:plans/drain.yaml"},
		{Name: "upgrade-compilers", Description: "Rolling upgrade of the compiler pool behind HAProxy", File: "embedded:plans/upgrade-compilers.yaml"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// Inline plans from a temp dir: a disk path, relative sub-plans and a few
// edge cases that need no fixture file.
func TestLoadFromDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("child.yml", "params: {who: {type: string, default: world}}\nsteps:\n  - {id: hi, message: \"hello {{ .params.who }}\"}\n")
	main := write("main.yaml", `steps:
  - id: sub
    plan: child.yml
  - id: flags
    when: true
    targets: [web, "!db"]
    message: {text: "{{ upper .vars.x }}"}
`)
	p, err := newLoader().Load(main)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "main" || p.File != main {
		t.Errorf("plan = %+v", p)
	}
	if s := p.Find("sub/hi"); s == nil || s.Pos.File != filepath.Join(dir, "child.yml") || s.Name != "Say hello {{ .params.who }}" {
		t.Errorf("sub/hi = %+v", s)
	}
	if s := p.Find("flags"); s.When != "true" || s.Targets != "web,!db" {
		t.Errorf("flags = %+v", s)
	}
	if _, err := newLoader().Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := newLoader().Load("bad name!"); err == nil || err.Error() != `invalid plan name "bad name!"` {
		t.Errorf("bad name: %v", err)
	}
	_, err = newLoader().Load("nosuch")
	if err == nil || err.Error() != `unknown plan "nosuch" (plans: drain, upgrade-compilers)` {
		t.Errorf("unknown plan: %v", err)
	}
	empty := write("empty.yaml", "# nothing\n")
	if _, err := newLoader().Load(empty); err == nil || !strings.Contains(err.Error(), "empty plan") {
		t.Errorf("empty plan: %v", err)
	}
}

// An error on the line of a secret param's default does not show the
// default in its excerpt.
func TestSecretDefaultMaskedInExcerpts(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "plans"), 0o755)
	os.WriteFile(filepath.Join(dir, "plans", "p.yaml"), []byte("name: p\nparams:\n  pw: {type: secret, default: hunter2-secret, bogus: 1}\nsteps:\n  - {id: a, targets: all, command: x}\n"), 0o644)
	l := newLoader()
	l.FS = os.DirFS(dir)
	_, err := l.Load("p")
	if err == nil || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), "default: ********") || strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("want the error with the default masked in its excerpt, got %v", err)
	}
}
