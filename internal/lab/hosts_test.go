package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/inventory"
)

// TestLoadBalancerPair: with two load balancers the lab has lb and lb2, the
// LB's name resolves to the VIP on every host (and to no host of its own),
// and the inventory names the VIP as lb_vip; with one, lb carries the name.
func TestLoadBalancerPair(t *testing.T) {
	for _, n := range []int{1, 2} {
		s := Spec{LoadBalancers: n, WorkDir: t.TempDir()}.Defaults()
		if err := s.validate(); err != nil {
			t.Fatal(err)
		}
		l := newLab(s)
		var lbs []string
		for _, h := range l.Hosts {
			if h.Groups[0] == "loadbalancer" {
				lbs = append(lbs, h.Short)
			}
		}
		hosts := l.etcHosts()
		if err := l.writeInventory(); err != nil {
			t.Fatal(err)
		}
		inv, _ := os.ReadFile(filepath.Join(s.WorkDir, "inventory.yaml"))
		switch n {
		case 1:
			if !slices.Equal(lbs, []string{"lb"}) || l.VIP != "" || !strings.Contains(hosts, "10.77.0.20\tlb.lab.test lb puppet.lab.test puppet\n") ||
				strings.Contains(string(inv), "lb_vip") {
				t.Errorf("one LB: %v, VIP %q\n%s\n%s", lbs, l.VIP, hosts, inv)
			}
		case 2:
			if !slices.Equal(lbs, []string{"lb", "lb2"}) || l.VIP != "10.77.0.29" || !strings.Contains(hosts, "10.77.0.29\tpuppet.lab.test puppet\n") ||
				strings.Count(hosts, "puppet.lab.test") != 1 || !strings.Contains(string(inv), "\n  lb_vip: 10.77.0.29/24\n") {
				t.Errorf("two LBs: %v, VIP %q\n%s\n%s", lbs, l.VIP, hosts, inv)
			}
		}
	}
	if err := (Spec{LoadBalancers: 3}.Defaults()).validate(); err == nil {
		t.Error("three load balancers accepted")
	}
}

// TestCAStandby: with a standby CA the lab has ca2 in group ca_standby, and
// the inventory it writes names it as the site's standby; without one the
// group is there and empty, and a step targeting it selects no host.
func TestCAStandby(t *testing.T) {
	for _, standby := range []bool{false, true} {
		s := Spec{CAStandby: standby, WorkDir: t.TempDir()}.Defaults()
		l := newLab(s)
		if err := l.writeInventory(); err != nil {
			t.Fatal(err)
		}
		inv, err := inventory.Load(l.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		hosts, err := inv.Select(inventory.GroupCAStandby)
		if err != nil {
			t.Fatalf("standby %v: %v", standby, err)
		}
		site := inv.SiteFor(inv.Host("ca.lab.test"))
		got := site.CAStandby
		// with a standby the CA's name is the LB's, routed by SNI
		wantName, wantRoute := "ca.lab.test", any(nil)
		if standby {
			wantName, wantRoute = "puppetca.lab.test", "sni"
		}
		if site.CAName != wantName || inv.Host("ca.lab.test").Vars["ca_route"] != wantRoute || strings.Contains(l.etcHosts(), " puppetca.lab.test\n") != standby {
			t.Errorf("standby %v: ca_name %q, ca_route %v, /etc/hosts:\n%s", standby, site.CAName, inv.Host("ca.lab.test").Vars["ca_route"], l.etcHosts())
		}
		switch {
		case standby && (len(hosts) != 1 || got != "ca2.lab.test" || hosts[0].SSH.Address != "10.77.0.9"):
			t.Errorf("with a standby: hosts %v, site's standby %q", hosts, got)
		case !standby && (len(hosts) != 0 || got != ""):
			t.Errorf("without a standby: hosts %v, site's standby %q", hosts, got)
		}
	}
}
