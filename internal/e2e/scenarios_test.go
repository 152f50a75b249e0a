//go:build scenarios

package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/lab"
)

// TestScenarios runs the day-2 scenarios named in TROUPE_E2E_SCENARIOS on a
// lab that is already up and bootstrapped (TROUPE_E2E_LAB, its work dir), so
// that one scenario can be worked on without a new site each time. The
// inventory is the lab's, or TROUPE_E2E_INV. A tool for working on a
// scenario, not a test of its own: only with -tags scenarios.
func TestScenarios(t *testing.T) {
	dir, names := os.Getenv("TROUPE_E2E_LAB"), os.Getenv("TROUPE_E2E_SCENARIOS")
	if dir == "" || names == "" {
		t.Fatal("runs scenarios on an existing lab: set TROUPE_E2E_LAB=/var/lib/troupe-lab and TROUPE_E2E_SCENARIOS=name,…")
	}
	l, err := lab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, l: l, bin: buildTroupe(t), dir: t.TempDir(), inv: envOr("TROUPE_E2E_INV", l.Inventory), traffic: new(string)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == name })
		if i < 0 {
			t.Fatalf("no scenario %q", name)
		}
		day2(t, s, name, func(t *testing.T, s *site) { scenarios[i].run(ctx, t, s) })
	}
}
