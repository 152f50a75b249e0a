package status

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestPrometheus: the healthy lab's reading, in the text exposition format,
// is read back by Prometheus's own parser, with the values the reading
// has: hosts up, the roles, the pool, JRubies, expiries; and the families
// the README documents are the ones written.
func TestPrometheus(t *testing.T) {
	site := labSite(t, nil)
	text := Prometheus(site)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses it: %v\n%s", err, text)
	}
	value := func(name string, labels ...string) (float64, bool) {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no family %s", name)
		}
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s, want a gauge", name, f.GetType())
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
		return 0, false
	}
	must := func(want float64, name string, labels ...string) {
		t.Helper()
		if v, ok := value(name, labels...); !ok || v != want {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, v, ok, want)
		}
	}
	must(1, "troupe_site_healthy")
	must(1, "troupe_ca_active", "host", "ca.lab.test")
	must(1, "troupe_host_up", "host", "compile1.lab.test")
	must(0, "troupe_host_level", "host", "compile1.lab.test")
	must(1, "troupe_host_role", "host", "lb.lab.test", "role", "lb")
	must(1, "troupe_compiler_pool_state", "host", "compile2.lab.test", "lb", "lb.lab.test", "state", "UP")
	if v, ok := value("troupe_jruby_total", "host", "compile1.lab.test"); !ok || v < 1 {
		t.Errorf("troupe_jruby_total of compile1 = %v (%v)", v, ok)
	}
	if v, ok := value("troupe_cert_expiry_seconds", "host", "agent1.lab.test"); !ok || v < 1000*24*3600 {
		t.Errorf("agent1's certificate expiry = %v s (%v); the lab's certificates run 5 years", v, ok)
	}
	// compile1's fixture: production deployed 2026-12-02 13:04:26 +0000
	deployed := time.Date(2026, 12, 2, 13, 4, 26, 0, time.UTC)
	must(site.Time.Sub(deployed).Seconds(), "troupe_code_deploy_age_seconds", "host", "compile1.lab.test", "environment", "production")
	if v, ok := value("troupe_crl_next_update_seconds", "host", "ca.lab.test"); !ok || v <= 0 {
		t.Errorf("the CRL's next update = %v s (%v)", v, ok)
	}

	// A host that could not be read is up 0, bad; a label value with a
	// quote and a line feed is escaped, and the parser reads it back.
	site = labSite(t, edits{"agent1.lab.test": func(*testing.T, string) string { return "" }})
	site.Hosts[len(site.Hosts)-1].Error = "dial tcp: i/o timeout"
	site.Hosts[0].Roles = append(site.Hosts[0].Roles, "odd \"role\"\nname\\")
	parser = expfmt.NewTextParser(model.UTF8Validation)
	fams, err = parser.TextToMetricFamilies(strings.NewReader(Prometheus(site)))
	if err != nil {
		t.Fatal(err)
	}
	must(0, "troupe_host_up", "host", "agent1.lab.test")
	must(1, "troupe_host_role", "host", "ca.lab.test", "role", "odd \"role\"\nname\\")

	// The README lists exactly the families written.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range MetricNames() {
		if !strings.Contains(string(readme), "`"+n+"`") {
			t.Errorf("README does not document %s", n)
		}
	}
	for n := range fams {
		if !slices.Contains(MetricNames(), n) {
			t.Errorf("%s written, not in MetricNames", n)
		}
	}
}
