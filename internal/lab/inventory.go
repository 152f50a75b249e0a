package lab

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// inventoryGroups is the order of groups in the inventory.
var inventoryGroups = []string{"ca", "ca_standby", "compilers", "loadbalancer", "puppetdb", "postgres", "agents"}

// writeInventory writes the troupe inventory (format version 1) for the lab.
func (l *Lab) writeInventory() error {
	s := l.Spec
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `troupe lab up` (%s lab in %s); rewritten on every up, removed by `troupe lab down`.\n", s.Suite, l.WorkDir)
	b.WriteString("version: 1\nvars:\n")
	fmt.Fprintf(&b, "  flavor: debian\n  domain: %s\n  lb_name: puppet.%s\n  ca_name: %s\n", s.Domain, s.Domain, s.CAName())
	if s.CAStandby {
		b.WriteString("  ca_route: sni\n")
	}
	if l.VIP != "" {
		fmt.Fprintf(&b, "  lb_vip: %s/24\n", l.VIP)
	}
	fmt.Fprintf(&b, "  package_repo: %q\n", "deb [trusted=yes] "+l.RepoURL+" ./")
	fmt.Fprintf(&b, "  control_repo: %s\n", l.ControlRepoURL)
	// Lab only: the JVMs JIT with C1 alone. On two CPUs shared by five JVMs
	// and the agents, a puppetserver (re)start takes about a quarter less
	// (49/44 s against 38/28 s, measured on the lab); peak speed matters
	// less here than start time. Not a setting for a site.
	b.WriteString("  server_java_args: \"-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger -XX:TieredStopAtLevel=1\"\n")
	b.WriteString("config:\n  ssh:\n    user: lab\n")
	fmt.Fprintf(&b, "    private_key: %s\n    known_hosts: %s\n", l.Key, l.KnownHosts)
	b.WriteString("    host_key_check: strict\n    sudo: true\ngroups:\n")
	for _, g := range inventoryGroups {
		var targets []string
		for _, h := range l.Hosts {
			if len(h.Groups) > 0 && h.Groups[0] == g {
				var aliases []string
				for _, a := range append([]string{h.Short}, h.Aliases...) {
					if !slices.Contains(inventoryGroups, a) { // troupe refuses an alias that names a group
						aliases = append(aliases, a)
					}
				}
				targets = append(targets, fmt.Sprintf("{name: %s, address: %s, aliases: [%s]}",
					h.Name, h.Address, strings.Join(aliases, ", ")))
			}
		}
		fmt.Fprintf(&b, "  %-13s {targets: [%s]}\n", g+":", strings.Join(targets, ", "))
	}
	return os.WriteFile(l.Inventory, []byte(b.String()), 0o644)
}
