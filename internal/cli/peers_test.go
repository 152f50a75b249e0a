package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// `plan validate -i` names the hosts steps act on besides their targets
// (the load balancers of lb_server, the CA of puppet_cert) and refuses,
// with exit 2, a plan whose peers the inventory does not have; `run`
// refuses it the same way before dialling anything (192.0.2.0/24 is
// TEST-NET-1: never reached).
func TestPlanValidateNamesThePeers(t *testing.T) {
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	write(t, filepath.Join(content, "plans", "p.yaml"), `name: p
steps:
  - {id: drain, targets: compilers, lb_server: {state: drain}}
  - id: cert
    targets: compilers
    puppet_cert: {ca: "{{ (index .groups.ca 0).name }}"}
`)
	write(t, filepath.Join(content, "roles", "README.md"), "")
	good := filepath.Join(dir, "good.yaml")
	write(t, good, `version: 1
groups:
  ca: {targets: [{name: ca.lab.test, address: 192.0.2.1}]}
  compilers: {targets: [{name: c1.lab.test, address: 192.0.2.2}]}
  loadbalancer: {targets: [{name: lb1.lab.test, address: 192.0.2.3}, {name: lb2.lab.test, address: 192.0.2.4}]}
`)
	r := troupe(t, nil, "--content", content, "plan", "validate", "-i", good, "p")
	want := "p: ok\n  peer lb1.lab.test (lb_server in step drain)\n  peer lb2.lab.test (lb_server in step drain)\n  peer ca.lab.test (puppet_cert in step cert)\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("code %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}

	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, `version: 1
groups:
  compilers: {targets: [{name: c1.lab.test, address: 192.0.2.2}]}
  loadbalancer: {targets: []}
`)
	for _, args := range [][]string{
		{"plan", "validate", "-i", bad, "p"},
		{"--state-dir", filepath.Join(dir, "state"), "run", "p", "-i", bad},
	} {
		r = troupe(t, nil, append([]string{"--content", content}, args...)...)
		out := r.stdout + r.stderr // a run reports its error in its report, on stdout
		if r.code != 2 || !strings.Contains(out, `step drain: lb_server: inventory group "loadbalancer" has no hosts`) ||
			!strings.Contains(out, `step cert: puppet_cert: ca: `) {
			t.Errorf("%s: code %d, want 2 naming both steps; stdout:\n%s\nstderr:\n%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
}
