package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const root = "../.."

// compiled validates with an independent JSON Schema implementation.
func compiled(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	b, err := JSON(name)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name+".json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name + ".json")
	if err != nil {
		t.Fatalf("%s schema does not compile: %v", name, err)
	}
	return s
}

// instance reads YAML as the JSON value a schema validator sees.
func instance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestShippedFilesValidate(t *testing.T) {
	for name, globs := range map[string][]string{
		"plan":      {"plans/*.yaml", "fixtures/plans/plans/*.yaml", "fixtures/bench/plans/*.yaml"},
		"role":      {"roles/*.yaml", "fixtures/plans/roles/*.yaml"},
		"inventory": {"inventory/*.yaml", "fixtures/inventory/site.yaml", "fixtures/inventory/small.yaml"},
	} {
		s := compiled(t, name)
		n := 0
		for _, g := range globs {
			files, _ := filepath.Glob(filepath.Join(root, g))
			for _, f := range files {
				n++
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Validate(instance(t, src)); err != nil {
					t.Errorf("%s does not validate against the %s schema:\n%v", f, name, err)
				}
			}
		}
		if n < 2 {
			t.Errorf("%s: only %d files found; the globs are wrong", name, n)
		}
	}
}

// TestSchemasRejectWhatTheDecodersReject: shape mistakes the decoders
// report must fail the schema too, and what they accept must pass.
func TestSchemasRejectWhatTheDecodersReject(t *testing.T) {
	for _, tt := range []struct {
		schema, doc string
		ok          bool
	}{
		{"plan", "steps: [{id: a, command: uptime, serial: '25%', timeout: 5m, targets: [web, db]}]", true},
		{"plan", "params: {v: {type: string, required: true}}\nsteps: [{id: a, puppet_code: {remote: r, basedir: b, environment: production}}]", true},
		{"plan", "steps: [{id: a, command: uptime, seriall: 2}]", false},                                                                     // misspelt control
		{"plan", "steps: [{id: a, command: {cmdd: uptime}}]", false},                                                                         // unknown action field
		{"plan", "steps: [{id: a, command: uptime, message: hi}]", false},                                                                    // two actions
		{"plan", "steps: [{id: a, name: nothing to do}]", false},                                                                             // no action
		{"plan", "steps: [{id: Bad_Id, command: uptime}]", false},                                                                            // id not kebab-case
		{"plan", "steps: [{id: a, retries: 2, steps: [{id: b, command: x}]}]", false},                                                        // action-only control on a block
		{"plan", "steps: [{id: a, command: x, timeout: soon}]", false},                                                                       // not a duration
		{"plan", "params: {v: {type: float}}\nsteps: [{id: a, command: x}]", false},                                                          // unknown param type
		{"plan", "params: {c: {type: certname}, s: {type: serial}}\nsteps: [{id: a, command: x, targets: {host: '{{ .params.c }}'}}]", true}, // typed strings, one host by name
		{"plan", "steps: [{id: a, command: x, targets: {hots: a}}]", false},                                                                  // {host: NAME} only
		{"plan", "name: x", false},                                                             // no steps
		{"plan", "steps: [{id: a, puppet_code: 'remote'}]", false},                             // no shorthand for puppet_code
		{"role", "vars: {heap: 2g}\nsteps: [{id: a, role: other}]", true},                      // roles have vars
		{"role", "params: {v: {type: string}}\nsteps: [{id: a, command: x}]", true},            // a role declares the params it reads
		{"role", "params: {v: {type: float}}\nsteps: [{id: a, command: x}]", false},            // unknown param type
		{"role", "steps: [{id: a, command: x}, {body: the work}]", true},                       // a body slot
		{"role", "steps: [{id: a, command: x}, {body: the work, id: b}]", false},               // a slot stands alone
		{"plan", "steps: [{id: a, role: r, steps: [{id: b, command: x}]}]", true},              // a role wrapping steps
		{"plan", "steps: [{id: a, command: y, steps: [{id: b, command: x}]}]", false},          // an action does not
		{"plan", "packages: {s: {server: '1.2'}}\nsteps: [{id: a, package: {set: s}}]", true},  // a package set
		{"plan", "packages: {s: {sever: '1.2'}}\nsteps: [{id: a, package: {set: s}}]", false},  // parts are the site's
		{"inventory", "version: 1\ngroups: {ca: {targets: [ca01]}}", true},                     // minimal
		{"inventory", "version: 2\ngroups: {ca: {targets: [ca01]}}", false},                    // version
		{"inventory", "version: 1\nconfig: {ssh: {usr: admin}}", false},                        // misspelt setting
		{"inventory", "version: 1\nconfig: {ssh: {host_key_check: maybe}}", false},             // enum
		{"inventory", "version: 1\ntargets: [{name: a, port: 70000}]", false},                  // port range
		{"inventory", "version: 1\ntargets: [{address: 10.0.0.1}]", false},                     // target without name
		{"inventory", "version: 1\ngroups: {all: {targets: [a]}}", false},                      // reserved group
		{"inventory", "version: 1\ngroups: {a: {groups: {b: {vars: {x: 1}, bad: 2}}}}", false}, // nested group key
	} {
		err := compiled(t, tt.schema).Validate(instance(t, []byte(tt.doc)))
		if (err == nil) != tt.ok {
			t.Errorf("%s %q: valid=%v, want %v (%v)", tt.schema, tt.doc, err == nil, tt.ok, err)
		}
	}
}

func TestEveryActionHasItsFields(t *testing.T) {
	s, err := Plan()
	if err != nil {
		t.Fatal(err)
	}
	defs := s["$defs"].(map[string]any)
	code := defs["action_puppet_code"].(map[string]any)["properties"].(map[string]any)
	for _, f := range []string{"remote", "basedir", "config", "r10k", "force", "environment"} {
		if code[f] == nil {
			t.Errorf("puppet_code lacks %q", f)
		}
	}
	if cmd := defs["action_command"].(map[string]any); cmd["anyOf"] == nil {
		t.Error("command takes a string shorthand")
	}
	if _, err := JSON("nope"); err == nil || !strings.Contains(err.Error(), "plan, role, inventory") {
		t.Errorf("unknown schema: %v", err)
	}
}
