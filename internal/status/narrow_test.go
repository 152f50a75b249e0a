package status

import (
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/troupe/troupe/internal/golden"
)

// eightSite is an 8-host site from the captured answers: the healthy lab
// plus a compiler whose JVM is still starting and an agent not yet
// enrolled, with a drained compiler and a stopped one for problems.
func eightSite(t *testing.T, names func(string) string) *Site {
	t.Helper()
	type row struct {
		fixture, name string
		heads         bool
		roles         []string
		edit          func(*testing.T, string) string
	}
	rows := []row{
		{"ca-healthy", "ca.lab.test", false, []string{RoleCA}, nil},
		{"compiler-healthy-1", "compile1.lab.test", true, []string{RoleCompiler}, nil},
		{"compiler-healthy-2", "compile2.lab.test", false, []string{RoleCompiler}, stopped},
		{"compiler-starting", "compile3.lab.test", false, []string{RoleCompiler}, nil},
		{"lb-healthy", "lb.lab.test", false, []string{RoleLB}, drain("compile1")},
		{"puppetdb-healthy", "puppetdb.lab.test", false, []string{RolePuppetDB, RoleDatabase}, nil},
		{"agent-healthy", "agent1.lab.test", false, []string{RoleAgent}, nil},
		{"agent-bare", "agent2.lab.test", false, []string{RoleAgent}, nil},
	}
	var hosts []*Host
	for _, r := range rows {
		out := fixture(t, r.fixture)
		if r.edit != nil {
			out = r.edit(t, out)
		}
		hosts = append(hosts, fromText(t, out, names(r.name), r.heads, r.roles...))
	}
	site := Judge(hosts, now, DefaultHorizon)
	site.WallMS = 1234
	return site
}

// The default view of an 8-host site: one line a host, every line within
// 120 cells (measured as a terminal shows them, colour codes aside), the
// problems listed below; the wide view of the same site does not fit (the
// control), and long host names and texts are cut or wrapped, not spilled.
func TestNarrowViewFits120Columns(t *testing.T) {
	same := func(s string) string { return s }
	long := func(s string) string {
		return strings.Replace(s, ".lab.test", ".datacenter-eu-west-3.corp.example.com", 1)
	}
	for name, names := range map[string]func(string) string{"lab names": same, "long names": long} {
		site := eightSite(t, names)
		if len(site.Problems) < 3 {
			t.Fatalf("%s: want problems to list, got %+v", name, site.Problems)
		}
		for _, color := range []bool{false, true} {
			out := narrowTable(site, color)
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			for _, l := range lines {
				if w := lipgloss.Width(l); w > MaxWidth {
					t.Errorf("%s (colour %v): a line of %d cells:\n%s", name, color, w, l)
				}
			}
			// one line a host, right under the header, in order
			for i, h := range site.Hosts {
				if l := lines[1+i]; !strings.HasPrefix(stripStyle(l), h.Name[:min(len(h.Name), 23)]) {
					t.Errorf("%s: line %d is not %s's: %q", name, 2+i, h.Name, l)
				}
			}
			for _, p := range site.Problems {
				if !strings.Contains(out, p.Host) || !strings.Contains(stripStyle(out), p.What+": ") {
					t.Errorf("%s: problem %+v not listed", name, p)
				}
			}
		}
		if name == "lab names" {
			golden.Check(t, "../../fixtures/golden/status_narrow.txt", narrowTable(site, false))
			widest := 0
			for _, l := range strings.Split(plainTable(site), "\n") {
				widest = max(widest, lipgloss.Width(l))
			}
			if widest <= MaxWidth {
				t.Errorf("the wide view is only %d cells: no columns left out of the narrow view?", widest)
			}
			t.Logf("wide view: %d cells", widest)
		}
	}
}

func stripStyle(s string) string { return ansi.Strip(s) }
