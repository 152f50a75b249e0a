package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// .site names the site's hosts and names; a registered result's data keys
// are read beside its own (.registered.r.k for .registered.r.data.k).
func TestSiteAndRegisteredData(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: json
    targets: web
    command: "echo '{\"k\": \"v\", \"rc\": \"not the rc\"}'"
    register: r
  - id: use
    targets: web
    command: "echo '{{ .site.loadbalancer }} {{ .site.lb_name }} {{ .site.compiler_alt_names }} {{ .registered.r.k }} {{ .registered.r.data.k }} {{ .registered.r.rc }}' > $H/out"
`, "lb1", "h1.example.com")
	f.inv.Host("h1.example.com").Vars["lb_aliases"] = []any{"puppet"}
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.hostDir("h1.example.com"), "out"))
	if err != nil {
		t.Fatal(err)
	}
	// no lb_name var: the first load balancer; the result's own rc wins
	if got, want := strings.TrimSpace(string(b)), "lb1 lb1 lb1,puppet,h1.example.com,h1 v v 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
