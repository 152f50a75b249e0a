package cli_test

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/step"
)

var update = flag.Bool("update", false, "rewrite the golden files of fixtures/hostile")

const hostile = "../../fixtures/hostile"

// Every file of fixtures/hostile (plans, their roles, inventories), and a
// few generated ones too big to keep, is refused with the positioned error
// in fixtures/hostile/golden, in bounded time and memory, without a crash.
func TestHostileInputs(t *testing.T) {
	gen := t.TempDir()
	big := func(name, head, line string, size int) {
		var b strings.Builder
		b.WriteString(head)
		for b.Len() < size {
			b.WriteString(line)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(gen, name)), 0o755)
		if err := os.WriteFile(filepath.Join(gen, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// a 63 MB plan and inventory: refused by size, never read whole
	big("plans/huge.yaml", "name: huge\nsteps:\n", "  - {id: step, targets: all, command: uptime}\n", 63<<20)
	big("inventory/huge.yaml", "version: 1\ngroups:\n  web:\n    targets:\n", "      - host\n", 63<<20)
	// an error at the end of a 3 MB line: the excerpt shows 120 characters
	big("plans/long-line.yaml", "name: long-line\nsteps:\n  - {id: a, targets: all, command: \"", strings.Repeat("x", 1<<20), 3<<20)
	f, _ := os.OpenFile(filepath.Join(gen, "plans/long-line.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\", seriall: 1}\n")
	f.Close()

	type tc struct{ kind, dir, name string }
	var cases []tc
	for _, dir := range []string{hostile, gen} {
		for _, kind := range []string{"plans", "inventory"} {
			files, _ := filepath.Glob(filepath.Join(dir, kind, "*.yaml"))
			for _, f := range files {
				cases = append(cases, tc{kind, dir, strings.TrimSuffix(filepath.Base(f), ".yaml")})
			}
		}
	}
	if len(cases) < 15 {
		t.Fatalf("only %d hostile inputs found", len(cases))
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			var err error
			if c.kind == "plans" {
				l := &plan.Loader{FS: os.DirFS(c.dir), FSName: "hostile", Actions: step.Registry{}, Funcs: render.Funcs()}
				_, err = l.Load(c.name)
			} else {
				_, err = inventory.Load(filepath.Join(c.dir, c.kind, c.name+".yaml"))
			}
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("loaded without an error")
			}
			if l, ok := diag.As(err); !ok || l[0].Line == 0 {
				t.Errorf("want a positioned error, got %v", err)
			}
			if took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 600<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			got := strings.ReplaceAll(err.Error(), c.dir, "hostile") + "\n"
			for _, line := range strings.Split(got, "\n") {
				if len([]rune(line)) > 400 {
					t.Errorf("a line of %d characters: %.80q…", len([]rune(line)), line)
				}
			}
			golden := filepath.Join(hostile, "golden", c.kind+"-"+c.name+".err")
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("error differs from %s (go test -run TestHostileInputs -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}
