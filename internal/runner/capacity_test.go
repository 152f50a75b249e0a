package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	troupe "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
)

// fakeSocat stands in for socat on the load balancer: it answers the
// runtime API from $H/haproxy/SERVER files ("UP|DOWN ready|drain|maint")
// and logs each command to $H/haproxy.log.
const fakeSocat = `#!/bin/sh
read -r cmd
echo "$cmd" >> "$H/haproxy.log"
case $cmd in
"show servers state"*)
  echo 1
  echo "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state"
  for f in "$H"/haproxy/*; do
    read -r op adm < "$f"; o=0; a=0
    [ "$op" = UP ] && o=2; [ "$adm" = drain ] && a=8; [ "$adm" = maint ] && a=1
    echo "3 compilers 1 $(basename "$f") 10.0.0.1 $o $a"
  done ;;
"show stat")
  echo "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status"
  for f in "$H"/haproxy/*; do
    read -r op adm < "$f"; st=$op
    [ "$op" = UP ] && [ "$adm" = drain ] && st=DRAIN; [ "$adm" = maint ] && st=MAINT
    echo "compilers,$(basename "$f"),0,0,0,0,,0,,,,,,,,,,$st"
  done ;;
"set server compilers/"*)
  rest=${cmd#set server compilers/}; n=${rest%% *}
  read -r op adm < "$H/haproxy/$n"; echo "$op ${rest##* }" > "$H/haproxy/$n" ;;
esac
`

// The shipped pool-leave role through the runner: min_ready from -p, from
// the inventory, or pool-leave's default 1, reaches the drain's guard.
func TestPoolLeaveGuardThroughTheRunner(t *testing.T) {
	role, err := troupe.Content.ReadFile("roles/pool-leave.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "socat"), []byte(fakeSocat), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	for _, c := range []struct {
		name      string
		param     int
		inventory any // c2's var min_ready; nil: none
		drained   bool
	}{
		{"param 2", 2, nil, false},
		{"inventory 2", 0, 2, false},
		{"param 1 over inventory 2", 1, 2, true},
		{"default 1", 0, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, "name: p\nsteps: [{id: none, targets: c2, command: 'true'}]\n", "lb1", "c1", "c2", "c3")
			f.plan = loadWith(t, f, `name: p
params:
  min_ready: {type: int}
steps:
  - id: leave
    targets: c2
    role: pool-leave
    vars: {capacity_wait: 0s}
`, map[string][]byte{"pool-leave": role})
			lb := f.hostDir("lb1")
			os.MkdirAll(filepath.Join(lb, "haproxy"), 0o755)
			for s, st := range map[string]string{"c1": "UP ready", "c2": "UP ready", "c3": "DOWN ready"} {
				os.WriteFile(filepath.Join(lb, "haproxy", s), []byte(st+"\n"), 0o644)
			}
			if c.inventory != nil {
				f.inv.Host("c2").Vars["min_ready"] = c.inventory
			}
			// the params as the CLI binds them: the role's drain_timeout and
			// drain_on_timeout defaults with them
			params, err := f.plan.BindParams(map[string]string{"min_ready": strconv.Itoa(c.param)})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = f.run(context.Background(), func(o *Options) { o.Params = params })
			log, _ := os.ReadFile(filepath.Join(lb, "haproxy.log"))
			sent := strings.Contains(string(log), "set server compilers/c2 state drain")
			if !strings.Contains(string(log), "show stat") || sent != c.drained {
				t.Fatalf("drain sent %v, want %v; run: %v; commands:\n%s", sent, c.drained, err, log)
			}
			if c.drained && err != nil {
				t.Fatal(err)
			}
			if !c.drained && (err == nil || !strings.Contains(err.Error(), "draining c2 would leave 1 of 3 compilers UP (c3 DOWN), below min_ready 2")) {
				t.Errorf("run: %v", err)
			}
			if c.drained && !strings.Contains(string(log), "set server compilers/c2 state maint") {
				t.Errorf("not in maintenance after the drain:\n%s", log)
			}
		})
	}
}

// loadWith loads planYAML as f's plan, with roles beside it.
func loadWith(t *testing.T, f *fixture, planYAML string, roles map[string][]byte) *plan.Plan {
	t.Helper()
	content := filepath.Join(f.root, "content")
	for name, b := range roles {
		if err := os.WriteFile(filepath.Join(content, "roles", name+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(content, "plans", "p.yaml"), []byte(planYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := (&plan.Loader{FS: os.DirFS(content), Actions: testActions{}, Funcs: render.Funcs()}).Load("p")
	if err != nil {
		t.Fatalf("load plan: %v", err)
	}
	return p
}
