package status

import (
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/puppet"
)

// TestVIPHolders: with two load balancers on lb_vip, exactly one holding
// the address is healthy and the table says which; none holding it, or both
// (two VRRP masters), is bad on the load balancers; an address that could
// not be read is a warning and judges no one.
func TestVIPHolders(t *testing.T) {
	const vip = "10.77.8.29"
	lb := func(name, vipAnswer string) *Host {
		t.Helper()
		f, _ := puppet.Get("debian")
		s := spec{Certname: name, Roles: []string{RoleLB}, Flavor: f, Socket: DefaultSocket, VIP: vip}
		if !strings.Contains(s.script(), "sec vip; ip -o -4 addr show to '"+vip+"/32'") || !strings.Contains(strings.Join(s.services(), " "), "keepalived") {
			t.Fatalf("the script does not read the VIP or keepalived:\n%s", s.script())
		}
		out := strings.Replace(fixture(t, "lb-healthy"), marker+" svc\nactive\n", marker+" svc\nactive\nactive\n", 1) + vipAnswer
		h := &Host{Name: name, Address: name, Roles: s.Roles, Packages: []Package{}, Services: []ServiceState{}, spec: s}
		h.secs = splitSections(out)
		fill(h)
		return h
	}
	holds := "\n" + marker + " vip\n2: eth0    inet " + vip + "/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever\n\n" + marker + " end 0\n"
	not := "\n" + marker + " vip\n\n" + marker + " end 0\n"
	unread := "\n" + marker + " vip\nip: command not found\n\n" + marker + " end 127\n"

	for _, tc := range []struct {
		name       string
		one, two   string
		level      Level
		problem    string
		narrowLine string
	}{
		{"one holds", holds, not, OK, "", "+VIP"},
		{"none holds", not, not, Bad, "no load balancer holds lb_vip " + vip, ""},
		{"both hold", holds, holds, Bad, "lb_vip " + vip + " held by lb and lb2 at once", ""},
		{"one unread", not, unread, Warn, "lb_vip " + vip + ": ip: command not found", ""},
	} {
		site := Judge([]*Host{lb("lb.lab.test", tc.one), lb("lb2.lab.test", tc.two)}, now, DefaultHorizon)
		var texts []string
		for _, p := range site.Problems {
			texts = append(texts, p.Text)
		}
		if site.Level != tc.level || tc.problem != "" && !strings.Contains(strings.Join(texts, "\n"), tc.problem) || tc.problem == "" && len(texts) > 0 {
			t.Errorf("%s: level %v, problems %q; want level %v with %q", tc.name, site.Level, texts, tc.level, tc.problem)
		}
		if tc.narrowLine != "" {
			if tbl := narrowTable(site, false); !strings.Contains(tbl, tc.narrowLine) {
				t.Errorf("%s: the table does not mark the holder:\n%s", tc.name, tbl)
			}
			if tbl := plainTable(site); !strings.Contains(tbl, "holds VIP "+vip) || !strings.Contains(tbl, "standby for "+vip) {
				t.Errorf("%s: the wide table does not say which holds the VIP:\n%s", tc.name, tbl)
			}
		}
	}
}
