package topology

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/troupe/troupe/internal/golden"
	"github.com/troupe/troupe/internal/inventory"
)

func TestGraphGolden(t *testing.T) {
	// fixtures/inventory/site.yaml reads a secret var from the environment
	t.Setenv("TROUPE_TEST_DB_PASSWORD", "unused")
	for name, file := range map[string]string{
		"site":    "../../inventory/site.yaml",           // the shipped example: every tier
		"fixture": "../../fixtures/inventory/site.yaml",  // unknown groups, nested groups, ungrouped hosts
		"small":   "../../fixtures/inventory/small.yaml", // no LB, no compilers
		"pair":    "../../fixtures/inventory/pair.yaml",  // two load balancers on lb_vip
	} {
		inv, err := inventory.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		g := Build(inv)
		for _, format := range Formats {
			var out bytes.Buffer
			if err := g.Write(&out, format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("..", "..", "fixtures", "golden", "graph_"+name+"."+map[string]string{"mermaid": "mmd", "dot": "dot"}[format]), out.String())
		}
	}
	if err := (Graph{}).Write(&bytes.Buffer{}, "svg"); err == nil {
		t.Error("unknown format accepted")
	}
}
