package step

import (
	"io/fs"
	"strings"
	"testing"

	troupe "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
)

// Every drain in every shipped plan (the pool-leave role and anything
// else) carries the capacity guard; lb-server, the operator's own
// drain/ready/maint command, is the one exception.
func TestEveryShippedDrainIsGuarded(t *testing.T) {
	entries, err := fs.ReadDir(troupe.Content, "plans")
	if err != nil {
		t.Fatal(err)
	}
	l := &plan.Loader{FS: troupe.Content, Actions: Registry{}, Funcs: render.Funcs()}
	drains := map[string]int{}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		p, err := l.Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var walk func([]*plan.Step)
		walk = func(steps []*plan.Step) {
			for _, s := range steps {
				walk(s.Steps)
				lb, ok := s.Action.(*LBServer)
				if !ok || (lb.State != "drain" && !strings.Contains(lb.State, "{{")) || name == "lb-server" {
					continue
				}
				drains[name]++
				if lb.MinUp == "" {
					t.Errorf("%s: step %s drains without min_up", name, s.ID)
				}
			}
		}
		walk(p.Steps)
	}
	// the plans that take compilers out of the pool, each at least once
	for _, name := range []string{"upgrade", "regen-cert", "ca-renew", "rollback-compiler", "remove-compiler"} {
		if drains[name] == 0 {
			t.Errorf("%s: no drain found (%v)", name, drains)
		}
	}
	if drains["upgrade"] < 3 { // soft writes on, the compilers, soft writes off
		t.Errorf("upgrade: %d drains", drains["upgrade"])
	}
}

// pool-leave's min_up: -p min_ready (the role declares it for every plan
// that includes it; 0: not given), else the vars (an inventory var over
// the role's default 1).
func TestPoolLeaveMinReady(t *testing.T) {
	l := &plan.Loader{FS: troupe.Content, Actions: Registry{}, Funcs: render.Funcs()}
	p, err := l.Load("upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if mr := p.Param("min_ready"); mr == nil || mr.Type != "int" || mr.Default != 0 {
		t.Fatalf("upgrade's min_ready (from roles/pool-leave.yaml): %+v", mr)
	}
	var minUp string
	var defaults map[string]any
	var find func([]*plan.Step, map[string]any)
	find = func(steps []*plan.Step, d map[string]any) {
		for _, s := range steps {
			if s.ID == "compilers/upgrade/leave" {
				d = s.Defaults
			}
			if lb, ok := s.Action.(*LBServer); ok && s.ID == "compilers/upgrade/leave/drain" {
				minUp, defaults = lb.MinUp, d
			}
			find(s.Steps, d)
		}
	}
	find(p.Steps, nil)
	if minUp == "" || defaults == nil {
		t.Fatalf("compilers/upgrade/leave/drain: min_up %q, role defaults %v", minUp, defaults)
	}
	for _, c := range []struct {
		params, inventory map[string]any
		want              string
	}{
		{map[string]any{"min_ready": 0}, nil, "1"},
		{map[string]any{"min_ready": 0}, map[string]any{"min_ready": 2}, "2"},
		{map[string]any{"min_ready": 3}, map[string]any{"min_ready": 2}, "3"},
	} {
		vars := map[string]any{}
		for k, v := range defaults {
			vars[k] = v
		}
		for k, v := range c.inventory {
			vars[k] = v
		}
		got, err := render.String(minUp, map[string]any{"params": c.params, "vars": vars})
		if err != nil || got != c.want {
			t.Errorf("params %v inventory %v: %q %v, want %s", c.params, c.inventory, got, err, c.want)
		}
	}
}

// The bootstrap's early install names, for every tier, the packages its
// role installs (which then finds them there), and renders for each.
func TestBootstrapInstallsEveryTierAtOnce(t *testing.T) {
	l := &plan.Loader{FS: troupe.Content, Actions: Registry{}, Funcs: render.Funcs()}
	p, err := l.Load("bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	var install *Package
	var order []string
	for _, s := range p.Steps {
		order = append(order, s.ID)
		if s.ID == "install" {
			install, _ = s.Action.(*Package)
		}
	}
	if install == nil || strings.Join(order[:5], " ") != "packages puppetdb-preseed puppetdb-keeps-database install ca" {
		t.Fatalf("steps %v, install %v", order, install)
	}
	want := map[string]string{
		"ca":           "puppetserver puppet-terminus-puppetdb git curl r10k",
		"compilers":    "puppetserver puppet-terminus-puppetdb git curl r10k",
		"puppetdb":     "puppet-agent postgresql puppetdb curl", // PostgreSQL beside it: h is site.database
		"postgres":     "puppet-agent postgresql",
		"loadbalancer": "haproxy socat",
		"agents":       "puppet-agent",
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"h": newFake(t)}}
	for g, w := range want {
		x := s.exec(t, "h")
		x.Groups = map[string][]string{g: {"h"}}
		x.Data["site"] = map[string]any{"database": "h"}
		names, err := install.names(x)
		if err != nil || strings.Join(names, " ") != w {
			t.Errorf("%s: %v %v, want %s", g, names, err, w)
		}
	}
	// a PuppetDB that is not the database host installs no PostgreSQL
	x := s.exec(t, "h")
	x.Groups = map[string][]string{"puppetdb": {"h"}}
	x.Data["site"] = map[string]any{"database": "db"}
	if names, err := install.names(x); err != nil || strings.Join(names, " ") != "puppet-agent puppetdb curl" {
		t.Errorf("puppetdb beside group postgres: %v %v", names, err)
	}
}

// No shipped plan pauses an agent while a pause of the same hosts is still
// open: a step skipped by when registers as skipped, so a second pause
// (conditional, or nested in another pool cycle) would overwrite the
// agent_service of the open one, and its resume would leave the agent
// stopped. Targets are compared by the selectors written (groups), which
// is what the shipped plans use.
func TestShippedAgentPausesDoNotNest(t *testing.T) {
	entries, err := fs.ReadDir(troupe.Content, "plans")
	if err != nil {
		t.Fatal(err)
	}
	l := &plan.Loader{FS: troupe.Content, Actions: Registry{}, Funcs: render.Funcs()}
	pauses := 0
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		p, err := l.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		type open struct{ id, targets string }
		var stack []open // pauses not yet resumed, in document order
		overlaps := func(a, b string) bool {
			for _, x := range strings.Split(a, ",") {
				if x == "all" || slicesContainsString(strings.Split(b, ","), x) || b == "all" {
					return true
				}
			}
			return false
		}
		var walk func(steps []*plan.Step, targets string)
		walk = func(steps []*plan.Step, targets string) {
			for _, s := range steps {
				tg := targets
				if s.Targets != "" {
					tg = s.Targets
				}
				switch s.Source {
				case "role:agent-pause":
					pauses++
					for _, o := range stack {
						if overlaps(o.targets, tg) {
							t.Errorf("%s: %s pauses %s while %s (%s) is not resumed", name, s.ID, tg, o.id, o.targets)
						}
					}
					stack = append(stack, open{s.ID, tg})
					continue
				case "role:agent-resume":
					for i := len(stack) - 1; i >= 0; i-- {
						if overlaps(stack[i].targets, tg) {
							stack = append(stack[:i], stack[i+1:]...)
							break
						}
					}
					continue
				}
				walk(s.Steps, tg)
			}
		}
		walk(p.Steps, "")
		if len(stack) > 0 {
			t.Errorf("%s: paused and never resumed: %v", name, stack)
		}
	}
	if pauses < 5 {
		t.Errorf("only %d agent pauses found in the shipped plans", pauses)
	}
}

func slicesContainsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
