// Package topology draws a site from its inventory: agents → load balancer
// → compilers → CA and PuppetDB, as Mermaid or Graphviz DOT. The tiers come
// from the groups the shipped plans target (agents, loadbalancer, compilers,
// ca, puppetdb); any other top-level group, and hosts in no group, are drawn
// as plain nodes so nothing in the inventory is silently left out.
package topology

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
)

// Tier is a known group drawn as a box of its hosts.
type Tier struct {
	Group string
	Title string
	Hosts []string
}

// Node is a plain node: an unknown group or a host in no group.
type Node struct {
	ID, Label string
}

// Edge joins two tiers (or a tier and itself never); Dashed marks traffic
// that is not the catalog path.
type Edge struct {
	From, To, Label string
	Dashed          bool
}

// Graph is the drawn site.
type Graph struct {
	Tiers []Tier
	Plain []Node
	Edges []Edge
}

// tiers are the groups the site's plans give a meaning to, in drawing order.
var tiers = []struct{ group, title string }{
	{inventory.GroupAgents, "agents"},
	{inventory.GroupLoadBalancer, "load balancer (HAProxy)"},
	{inventory.GroupCompilers, "compilers (puppetserver)"},
	{inventory.GroupCA, "CA (puppetserver)"},
	{inventory.GroupCAStandby, "standby CA (puppetserver masked)"},
	{inventory.GroupPuppetDB, "PuppetDB (PostgreSQL)"},
	{inventory.GroupPostgres, "PostgreSQL (PuppetDB's database)"},
}

// Build reads the graph out of an inventory.
func Build(inv *inventory.Inventory) Graph {
	var g Graph
	has := map[string]bool{}
	for _, t := range tiers {
		if grp := inv.Group(t.group); grp != nil && (len(grp.Targets) > 0 || !slices.Contains(inventory.OptionalGroups, t.group)) {
			g.Tiers = append(g.Tiers, Tier{Group: t.group, Title: t.title, Hosts: grp.Targets})
			has[t.group] = true
		}
	}
	grouped := map[string]bool{}
	for _, grp := range inv.Groups {
		for _, h := range grp.Targets {
			grouped[h] = true
		}
		if grp.Parent != "" || has[grp.Name] {
			continue // nested groups' hosts are drawn in their parent
		}
		g.Plain = append(g.Plain, Node{ID: groupID(grp.Name), Label: fmt.Sprintf("%s (%s)", grp.Name, plural(len(grp.Targets), "host"))})
	}
	for _, h := range inv.Hosts {
		if !grouped[h.Name] {
			g.Plain = append(g.Plain, Node{ID: hostID(h.Name), Label: h.Name})
		}
	}

	str := func(k string) string { s, _ := inv.Vars[k].(string); return s }
	lb, ca := ":8140", ":8140"
	if n := str("lb_name"); n != "" {
		lb = n + ":8140"
	}
	// a load-balancer pair: lb_name is the virtual IP one of them holds
	if vip := str("lb_vip"); vip != "" {
		for i := range g.Tiers {
			if g.Tiers[i].Group == inventory.GroupLoadBalancer {
				g.Tiers[i].Title = "load balancers (HAProxy; keepalived holds " + vip + " on one)"
			}
		}
		lb = strings.TrimSuffix(lb, ":8140") + " = VIP :8140"
	}
	if n := str("ca_name"); n != "" {
		ca = n + ":8140"
	}
	// the catalog path: agents, then the LB when there is one, then the
	// compilers, or the CA alone on a site without compilers
	server := inventory.GroupCompilers
	if !has[server] {
		server = inventory.GroupCA
	}
	add := func(from, to, label string, dashed bool) {
		if has[from] && has[to] {
			g.Edges = append(g.Edges, Edge{From: from, To: to, Label: label, Dashed: dashed})
		}
	}
	if has[inventory.GroupLoadBalancer] {
		add(inventory.GroupAgents, inventory.GroupLoadBalancer, lb, false)
		add(inventory.GroupLoadBalancer, server, "leastconn :8140", false)
	} else if server == inventory.GroupCA {
		add(inventory.GroupAgents, inventory.GroupCA, ca, false)
	} else {
		add(inventory.GroupAgents, server, ":8140", false)
	}
	if server == inventory.GroupCompilers {
		add(inventory.GroupCompilers, inventory.GroupCA, "certificates :8140", false)
	}
	add(server, inventory.GroupPuppetDB, "facts, catalogs, reports :8081", false)
	add(inventory.GroupPuppetDB, inventory.GroupPostgres, "TLS, Puppet certificates :5432", false)
	for i := range g.Tiers {
		if g.Tiers[i].Group == inventory.GroupPuppetDB && has[inventory.GroupPostgres] {
			g.Tiers[i].Title = "PuppetDB"
		}
	}
	// agents reach the CA by its own name, or through the LB when it
	// routes the CA's name by SNI (ca_route: sni)
	if str("ca_route") == "sni" && has[inventory.GroupLoadBalancer] {
		add(inventory.GroupLoadBalancer, inventory.GroupCA, "SNI "+ca, true)
	} else if server != inventory.GroupCA {
		add(inventory.GroupAgents, inventory.GroupCA, "certificates "+ca, true)
	}
	add(inventory.GroupCA, inventory.GroupCAStandby, "CA directory on every change (SSH)", true)
	return g
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

var nonID = regexp.MustCompile(`[^A-Za-z0-9_]`)

// IDs are prefixed so a host and a group of the same name, or a name that
// is a keyword of either language ("end", "graph"), never collide.
func groupID(name string) string { return "g_" + nonID.ReplaceAllString(name, "_") }
func hostID(name string) string  { return "h_" + nonID.ReplaceAllString(name, "_") }

// Mermaid writes a flowchart.
func (g Graph) Mermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, t := range g.Tiers {
		fmt.Fprintf(&b, "  subgraph %s[%q]\n", groupID(t.Group), t.Title)
		for _, h := range t.Hosts {
			fmt.Fprintf(&b, "    %s[%q]\n", hostID(t.Group+"/"+h), h)
		}
		if len(t.Hosts) == 0 {
			fmt.Fprintf(&b, "    %s[%q]\n", groupID(t.Group)+"_empty", "no hosts")
		}
		b.WriteString("  end\n")
	}
	for _, n := range g.Plain {
		fmt.Fprintf(&b, "  %s[%q]\n", n.ID, n.Label)
	}
	for _, e := range g.Edges {
		arrow := "-->"
		if e.Dashed {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s|%q| %s\n", groupID(e.From), arrow, e.Label, groupID(e.To))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Dot writes a Graphviz digraph: one cluster per tier, edges drawn between
// clusters (compound) from each cluster's first node.
func (g Graph) Dot(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph troupe {\n  rankdir=LR;\n  compound=true;\n  node [shape=box];\n")
	anchor := map[string]string{}
	for _, t := range g.Tiers {
		fmt.Fprintf(&b, "  subgraph cluster_%s {\n    label=%q;\n", strings.TrimPrefix(groupID(t.Group), "g_"), t.Title)
		ids := []string{}
		for _, h := range t.Hosts {
			ids = append(ids, hostID(t.Group+"/"+h))
			fmt.Fprintf(&b, "    %s [label=%q];\n", ids[len(ids)-1], h)
		}
		if len(ids) == 0 {
			ids = append(ids, groupID(t.Group)+"_empty")
			fmt.Fprintf(&b, "    %s [label=\"no hosts\", style=dashed];\n", ids[0])
		}
		anchor[t.Group] = ids[0]
		b.WriteString("  }\n")
	}
	for _, n := range g.Plain {
		fmt.Fprintf(&b, "  %s [label=%q];\n", n.ID, n.Label)
	}
	for _, e := range g.Edges {
		attrs := []string{fmt.Sprintf("label=%q", e.Label),
			"ltail=cluster_" + strings.TrimPrefix(groupID(e.From), "g_"), "lhead=cluster_" + strings.TrimPrefix(groupID(e.To), "g_")}
		if e.Dashed {
			attrs = append(attrs, "style=dashed")
		}
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", anchor[e.From], anchor[e.To], strings.Join(attrs, ", "))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Formats are the output formats Write knows.
var Formats = []string{"mermaid", "dot"}

// Write draws g in format.
func (g Graph) Write(w io.Writer, format string) error {
	switch format {
	case "mermaid":
		return g.Mermaid(w)
	case "dot":
		return g.Dot(w)
	}
	return fmt.Errorf("unknown graph format %q (one of %s)", format, strings.Join(Formats, ", "))
}
