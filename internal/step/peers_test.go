package step

import (
	"strings"
	"testing"
)

// The actions that reach other hosts name them before the run, from the
// same scope and the same code their Run uses: templated groups and CA
// names render, and an empty group or a CA that renders empty is an error.
func TestPeersNamedFromTheScope(t *testing.T) {
	sc := Scope{
		Data: map[string]any{
			"vars":   map[string]any{"lbs": "edge"},
			"groups": map[string]any{"ca": []any{map[string]any{"name": "ca1.lab.test"}}},
		},
		Groups: map[string][]string{"loadbalancer": {"lb1", "lb2"}, "edge": {"lb9"}, "ca": {"ca1.lab.test"}},
	}
	for _, c := range []struct {
		name string
		a    PeerUser
		want string
		err  string
	}{
		{"lb_server default group", &LBServer{State: "drain"}, "lb1 lb2", ""},
		{"lb_server templated group", &LBServer{State: "drain", LB: "{{ .vars.lbs }}"}, "lb9", ""},
		{"lb_server empty group", &LBServer{State: "drain", LB: "nowhere"}, "", `inventory group "nowhere" has no hosts`},
		{"lb_server unknown var", &LBServer{State: "drain", LB: "{{ .vars.nope }}"}, "", `lb: `},
		{"puppet_cert", &PuppetCert{CA: "{{ (index .groups.ca 0).name }}"}, "ca1.lab.test", ""},
		{"puppet_cert empty", &PuppetCert{CA: "{{ if false }}x{{ end }}"}, "", "names no host"},
	} {
		got, err := c.a.Peers(sc)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%s: %v %v, want %s", c.name, got, err, c.want)
		}
	}
}
