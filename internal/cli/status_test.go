package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestStatusBadInput(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	write(t, inv, "version: 1\ngroups:\n  compilers: {targets: [c1.example.com]}\n")
	r := troupe(t, nil, "status", "-i", inv)
	if r.code != 2 || !strings.Contains(r.stderr, "c1.example.com: vars.flavor") {
		t.Errorf("no flavor: %+v", r)
	}
	write(t, inv, "version: 1\nvars: {flavor: debian}\ngroups:\n  compilers: {targets: [c1.example.com]}\n")
	if r := troupe(t, nil, "status", "-i", inv, "--horizon", "-1"); r.code != 2 {
		t.Errorf("--horizon -1: %+v", r)
	}
	if r := troupe(t, nil, "status", "-i", filepath.Join(dir, "missing.yaml")); r.code != 2 {
		t.Errorf("missing inventory: %+v", r)
	}
}

func TestStatusUnreachable(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	// a port nothing listens on: refused at once
	write(t, inv, "version: 1\nvars: {flavor: debian}\nconfig: {ssh: {port: 1, host_key_check: off}}\n"+
		"groups:\n  compilers: {targets: [{name: c1.example.com, address: 127.0.0.1}]}\n")
	r := troupe(t, []string{"TROUPE_STATE_DIR=" + filepath.Join(dir, "state")}, "status", "-i", inv, "--format", "json", "--timeout", "5s")
	if r.code != 1 || !strings.Contains(r.stdout, `"error": "unreachable:`) || !strings.Contains(r.stdout, `"healthy": false`) {
		t.Errorf("unreachable: %+v", r)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "state", "*")); len(matches) > 0 {
		t.Errorf("status wrote local state: %v", matches)
	}
}

// The default view is one line a host; --wide is the bordered table of
// every column.
func TestStatusWide(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	write(t, inv, "version: 1\nvars: {flavor: debian}\nconfig: {ssh: {port: 1, host_key_check: off}}\n"+
		"groups:\n  compilers: {targets: [{name: c1.example.com, address: 127.0.0.1}]}\n")
	narrow := troupe(t, nil, "status", "-i", inv, "--timeout", "5s", "--color", "never")
	wide := troupe(t, nil, "status", "-i", inv, "--timeout", "5s", "--color", "never", "--wide")
	if narrow.code != 1 || !strings.HasPrefix(narrow.stdout, "HOST  ") || strings.Contains(narrow.stdout, "+---") ||
		!strings.Contains(narrow.stdout, "\nc1.example.com  compiler  BAD") {
		t.Errorf("default view: %+v", narrow)
	}
	if wide.code != 1 || !strings.HasPrefix(wide.stdout, "+---") || !strings.Contains(wide.stdout, "| PACKAGES ") {
		t.Errorf("--wide: %+v", wide)
	}
}
