package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
