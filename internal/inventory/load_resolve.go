package inventory

import (
	"net/netip"
	"slices"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/yamldoc"
)

// resolve turns the collected entries into hosts with merged vars and SSH
// settings: names and aliases, one host per name, the precedence layers,
// then jump hosts.
func (l *loader) resolve() {
	defined, aliasOf := l.aliases()
	hosts, order := l.mergeEntries(defined, aliasOf)
	l.checkGroupNames(hosts, aliasOf)
	l.inv.Vars, l.inv.Secrets = flatten(l.top.vars)
	for _, gd := range l.groups {
		gd.g.Vars, gd.g.Secrets = flatten(gd.vars)
	}
	settings := map[*Host]map[string]setting{}
	for _, hd := range order {
		settings[hd.h] = l.layers(hd)
		l.inv.Hosts = append(l.inv.Hosts, hd.h)
	}
	l.jumps(settings)
	l.checkVRRPPeers(order)
	l.checkOneHost(order, GroupCAStandby, "the standby CA", GroupCA, "the CA")
	l.checkOneHost(order, GroupPostgres, "PuppetDB's PostgreSQL", GroupCompilers, "a compiler")
}

// checkOneHost: group holds one host at most (the standby CA: the CA
// directory is pushed to one host; postgres: one primary, standbys are not
// built yet), and none of the hosts of group apart.
func (l *loader) checkOneHost(order []*hostDef, group, what, apart, apartWhat string) {
	var in []*hostDef
	for _, hd := range order {
		if slices.Contains(hd.h.Groups, group) {
			in = append(in, hd)
		}
	}
	for i, hd := range in {
		var n ast.Node // the host's entry in the group
		for _, e := range hd.entries {
			if e.group != nil && e.group.g.Name == group {
				n = e.node
				break
			}
		}
		switch {
		case i > 0:
			l.d.Errorf(n, "group %q holds one host, %s; %q is a second", group, what, hd.h.Name)
		case slices.Contains(hd.h.Groups, apart):
			l.d.Errorf(n, "host %q is in group %q and group %q: %s is another host than %s", hd.h.Name, apart, group, what, apartWhat)
		}
	}
}

// checkVRRPPeers: with lb_vip, the load balancers reach each other by
// unicast VRRP at their inventory addresses (roles/templates/keepalived.conf.tmpl),
// which keepalived takes only as IP addresses.
func (l *loader) checkVRRPPeers(order []*hostDef) {
	var lbs []*hostDef
	for _, hd := range order {
		if slices.Contains(hd.h.Groups, GroupLoadBalancer) && hd.h.Vars["lb_vip"] != nil {
			lbs = append(lbs, hd)
		}
	}
	if len(lbs) < 2 {
		return
	}
	for _, hd := range lbs {
		addr := hd.h.SSH.Address
		if addr == "" {
			addr = hd.h.Name
		}
		if _, err := netip.ParseAddr(addr); err == nil {
			continue
		}
		n := hd.addrN
		if n == nil && len(hd.entries) > 0 {
			n = hd.entries[0].node
		}
		l.d.Errorf(n, "load balancer %q: with lb_vip its address must be an IP address (keepalived's unicast peers), got %q", hd.h.Name, addr)
	}
}

// aliases returns the names defined by mapping entries, and each alias's
// host, refusing an alias that is another host's name or alias.
func (l *loader) aliases() (defined map[string]bool, aliasOf map[string]string) {
	defined = map[string]bool{}
	for _, e := range l.entries {
		if e.isMap {
			defined[e.name] = true
		}
	}
	aliasOf = map[string]string{}
	for _, e := range l.entries {
		for i, a := range e.aliases {
			switch prev, dup := aliasOf[a]; {
			case a == e.name:
			case defined[a]:
				l.d.Errorf(e.aliasN[i], "alias %q of host %q is the name of another host", a, e.name)
			case dup && prev != e.name:
				l.d.Errorf(e.aliasN[i], "alias %q of host %q is already an alias of host %q", a, e.name, prev)
			default:
				aliasOf[a] = e.name
			}
		}
	}
	return defined, aliasOf
}

// mergeEntries gathers every appearance of a host (a bare name may be an
// alias) into one hostDef, in file order: its address, aliases and groups.
func (l *loader) mergeEntries(defined map[string]bool, aliasOf map[string]string) (map[string]*hostDef, []*hostDef) {
	hosts := map[string]*hostDef{}
	var order []*hostDef
	for _, e := range l.entries {
		name := e.name
		if !e.isMap && !defined[name] {
			if canon, ok := aliasOf[name]; ok {
				name = canon
			}
		}
		hd := hosts[name]
		if hd == nil {
			hd = &hostDef{h: &Host{Name: name}, member: map[*groupDef]bool{}}
			hosts[name] = hd
			order = append(order, hd)
		}
		hd.entries = append(hd.entries, e)
		if e.address != "" {
			if hd.address != "" && hd.address != e.address {
				line, col := yamldoc.Pos(hd.addrN)
				l.d.Errorf(e.addrN, "host %q: address %q conflicts with address %q set at %d:%d", name, e.address, hd.address, line, col)
			} else if hd.address == "" {
				hd.address, hd.addrN = e.address, e.addrN
			}
		}
		for _, a := range e.aliases {
			if a != name && !contains(hd.h.Aliases, a) {
				hd.h.Aliases = append(hd.h.Aliases, a)
			}
		}
		for g := e.group; g != nil; g = g.parent {
			hd.member[g] = true
			if !contains(g.g.Targets, name) {
				g.g.Targets = append(g.g.Targets, name)
			}
		}
	}
	return hosts, order
}

// checkGroupNames refuses group names that are host names or aliases.
func (l *loader) checkGroupNames(hosts map[string]*hostDef, aliasOf map[string]string) {
	for _, gd := range l.groups {
		if hd, ok := hosts[gd.g.Name]; ok {
			l.d.Errorf(gd.keyN, "group %q has the same name as host %q", gd.g.Name, hd.h.Name)
		} else if canon, ok := aliasOf[gd.g.Name]; ok {
			l.d.Errorf(gd.keyN, "group %q has the same name as an alias of host %q", gd.g.Name, canon)
		}
	}
}

// layers merges a host's vars and SSH settings by precedence (top level,
// its groups in file order, its own entries) into hd.h, and returns the
// SSH settings with their nodes, for the jump hosts.
func (l *loader) layers(hd *hostDef) map[string]setting {
	h := hd.h
	vars := map[string]varVal{}
	ssh := map[string]setting{}
	apply := func(ly layer) {
		for k, v := range ly.vars {
			vars[k] = v
		}
		for k, v := range ly.ssh {
			ssh[k] = v
		}
	}
	apply(l.top)
	for _, gd := range l.groups {
		if hd.member[gd] {
			h.Groups = append(h.Groups, gd.g.Name)
			apply(gd.layer)
		}
	}
	for _, e := range hd.entries {
		apply(e.layer)
	}
	h.Vars, h.Secrets = flatten(vars)
	h.SSH = transport.Config{
		Host:           h.Name,
		Address:        h.Name,
		Port:           DefaultPort,
		User:           currentUser(),
		ConnectTimeout: DefaultConnectTimeout,
		HostKeyCheck:   DefaultHostKeyCheck,
	}
	if hd.address != "" {
		h.SSH.Address = hd.address
	}
	for k, s := range ssh {
		setSSH(&h.SSH, k, s.v)
	}
	return ssh
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
