package status

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/puppet"
)

// allSpecs is every flavor with every role at once, and each role alone.
func allSpecs(t *testing.T) []spec {
	t.Helper()
	var out []spec
	for _, name := range puppet.FlavorNames() {
		f, err := puppet.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, spec{Certname: "all.example.com", Roles: roleOrder, Flavor: f, Socket: DefaultSocket, Heads: true})
		for _, r := range roleOrder {
			out = append(out, spec{Certname: r + ".example.com", Roles: []string{r}, Flavor: f, Socket: "/run/haproxy/it's.sock"})
		}
	}
	return out
}

func TestScriptParses(t *testing.T) {
	for _, s := range allSpecs(t) {
		out, err := exec.Command("sh", "-n", "-c", s.script()).CombinedOutput()
		if err != nil {
			t.Errorf("%s %v: sh -n: %v\n%s\n%s", s.Flavor.Name, s.Roles, err, out, s.script())
		}
	}
}

// redirect is every output redirection in the script: > FILE, >> FILE, >&N.
var redirect = regexp.MustCompile(`\d?>>?\s*(&\d|[^\s;)]+)`)

// TestScriptWritesNothing: the script's only redirections go to /dev/null
// or another descriptor, and it runs nothing that writes (no tee, touch,
// mkdir, rm, mv, cp, install, systemctl other than is-active, puppet,
// r10k, haproxy commands other than show).
func TestScriptWritesNothing(t *testing.T) {
	for _, s := range allSpecs(t) {
		sc := s.script()
		for _, m := range redirect.FindAllStringSubmatch(sc, -1) {
			if m[1] != "/dev/null" && !strings.HasPrefix(m[1], "&") {
				t.Errorf("%s %v: redirection %q", s.Flavor.Name, s.Roles, m[0])
			}
		}
		for _, w := range []string{"tee ", "touch ", "mkdir ", "rm ", "mv ", "cp ", "install ", "chown ", "chmod ", "r10k ", "puppet ", "sed -i", "dd "} {
			if strings.Contains(sc, w) {
				t.Errorf("%s %v: runs %q", s.Flavor.Name, s.Roles, w)
			}
		}
		for _, l := range strings.Split(sc, "\n") {
			if i := strings.Index(l, "systemctl "); i >= 0 && !strings.HasPrefix(l[i:], "systemctl is-active ") {
				t.Errorf("systemctl other than is-active: %q", l)
			}
			if strings.Contains(l, "socat") && !strings.Contains(l, "echo 'show ") {
				t.Errorf("HAProxy command other than show: %q", l)
			}
			if strings.Contains(l, "curl ") && strings.Contains(l, "-X") {
				t.Errorf("curl with a method: %q", l)
			}
		}
	}
}

// TestScriptBounded: every network call has a deadline.
func TestScriptBounded(t *testing.T) {
	for _, s := range allSpecs(t) {
		for _, l := range strings.Split(s.script(), "\n") {
			switch {
			case strings.Contains(l, "curl -s") && !strings.Contains(l, " -m ") && !strings.Contains(l, `"$@"`):
				t.Errorf("curl without -m: %q", l)
			case strings.HasPrefix(l, "sec ") && strings.Contains(l, "pcurl ") && !strings.Contains(l, "pcurl -m "):
				t.Errorf("pcurl without -m: %q", l)
			case strings.Contains(l, "socat") && !strings.Contains(l, "-T "):
				t.Errorf("socat without -T: %q", l)
			case strings.Contains(l, "git ls-remote") && !strings.Contains(l, "timeout "):
				t.Errorf("git without timeout: %q", l)
			}
		}
	}
}
