package inventory

import (
	"fmt"
	"slices"
	"strings"
)

// The groups the shipped plans and roles give a meaning to: an inventory
// names its hosts' parts in the site by putting them in these groups.
const (
	GroupCA           = "ca"           // the CA server (one)
	GroupCAStandby    = "ca_standby"   // the standby CA the CA directory is pushed to (at most one)
	GroupCompilers    = "compilers"    // the puppetservers behind the load balancer
	GroupLoadBalancer = "loadbalancer" // HAProxy
	GroupPuppetDB     = "puppetdb"     // PuppetDB (the first: the migrator, and PostgreSQL's host without group postgres)
	GroupPostgres     = "postgres"     // PuppetDB's PostgreSQL on a host of its own (at most one)
	GroupAgents       = "agents"       // the Puppet agents
)

// OptionalGroups are the site's groups an inventory may leave out or
// empty: a step that targets one then has no host and is skipped.
var OptionalGroups = []string{GroupCAStandby, GroupPostgres}

// Site is what plans call the site's well-known hosts and names, for one
// host (names are the host's vars, so a group may set them): `.site.ca`
// rather than `(index .groups.ca 0).name`.
type Site struct {
	CA        string   // the CA host (the first of group ca)
	CAStandby string   // the standby CA host (group ca_standby), or ""
	PuppetDB  string   // the first PuppetDB host: the one that migrates the database
	PuppetDBs []string // every PuppetDB host
	// Database is PuppetDB's PostgreSQL host: the host of group postgres,
	// else the first PuppetDB (PostgreSQL beside it, as a one-PuppetDB site
	// has it). Every other PuppetDB reaches it over TLS with its Puppet
	// certificate.
	Database     string
	Compilers    []string // every compiler host
	LoadBalancer string   // the first HAProxy host
	CAName       string   // the name agents reach the CA by: var ca_name, else the CA host
	LBName       string   // the name agents reach the compilers by: var lb_name, else the first HAProxy host
	PuppetDBName string   // the name the servers reach PuppetDB by: var puppetdb_name, else the PuppetDB host
	// PuppetDBURLs is puppetdb.conf's server_urls for this host: with var
	// puppetdb_name, that name alone; else every PuppetDB, the list turned
	// so that the i-th compiler starts at the i-th PuppetDB (the PuppetDBs
	// share the compile load; each fails over to the next in its list).
	PuppetDBURLs string
	// The dns_alt_names a certificate of this host carries (Puppet's
	// comma-separated form) when it is a compiler, or the CA: the name
	// agents use (lb_name, ca_name), its aliases (lb_aliases, ca_aliases),
	// the host's own name and short name.
	CompilerAltNames string
	CAAltNames       string
}

// SiteKeys are the keys of Site.Data, in the order documented.
var SiteKeys = []string{"ca", "ca_standby", "puppetdb", "puppetdbs", "database", "compilers", "loadbalancer", "ca_name", "lb_name", "puppetdb_name",
	"puppetdb_urls", "compiler_alt_names", "ca_alt_names"}

// SiteFor is the site as host h sees it (h's vars name the site's names).
func (inv *Inventory) SiteFor(h *Host) Site {
	first := func(group string) string {
		if names := inv.groupHosts(group); len(names) > 0 {
			return names[0]
		}
		return ""
	}
	named := func(v, fallback string) string {
		if s, ok := h.Vars[v].(string); ok && s != "" {
			return s
		}
		return fallback
	}
	s := Site{
		CA:           first(GroupCA),
		CAStandby:    first(GroupCAStandby),
		PuppetDB:     first(GroupPuppetDB),
		PuppetDBs:    inv.groupHosts(GroupPuppetDB),
		Compilers:    inv.groupHosts(GroupCompilers),
		LoadBalancer: first(GroupLoadBalancer),
		Database:     first(GroupPostgres),
	}
	if s.Database == "" {
		s.Database = s.PuppetDB
	}
	s.CAName = named("ca_name", s.CA)
	s.LBName = named("lb_name", s.LoadBalancer)
	s.PuppetDBName = named("puppetdb_name", s.PuppetDB)
	s.PuppetDBURLs = "https://" + s.PuppetDBName + ":8081"
	if s.PuppetDBName == s.PuppetDB && len(s.PuppetDBs) > 1 {
		start := max(slices.Index(s.Compilers, h.Name), 0) % len(s.PuppetDBs)
		var urls []string
		for _, db := range slices.Concat(s.PuppetDBs[start:], s.PuppetDBs[:start]) {
			urls = append(urls, "https://"+db+":8081")
		}
		s.PuppetDBURLs = strings.Join(urls, ",")
	}
	short, _, _ := strings.Cut(h.Name, ".")
	altNames := func(name, aliases string) string {
		list := []string{name}
		if l, ok := h.Vars[aliases].([]any); ok {
			for _, a := range l {
				list = append(list, fmt.Sprint(a))
			}
		}
		return strings.Join(append(list, h.Name, short), ",")
	}
	s.CompilerAltNames = altNames(s.LBName, "lb_aliases")
	s.CAAltNames = altNames(s.CAName, "ca_aliases")
	return s
}

// Data is the site as templates see it (.site), keyed by SiteKeys.
func (s Site) Data() map[string]any {
	return map[string]any{
		"ca": s.CA, "ca_standby": s.CAStandby, "puppetdb": s.PuppetDB, "puppetdbs": anyList(s.PuppetDBs), "database": s.Database, "compilers": anyList(s.Compilers), "loadbalancer": s.LoadBalancer,
		"ca_name": s.CAName, "lb_name": s.LBName, "puppetdb_name": s.PuppetDBName, "puppetdb_urls": s.PuppetDBURLs,
		"compiler_alt_names": s.CompilerAltNames, "ca_alt_names": s.CAAltNames,
	}
}

// groupHosts are the names of the hosts of group name that exist, in order.
func (inv *Inventory) groupHosts(name string) []string {
	var out []string
	for _, g := range inv.Groups {
		if g.Name != name {
			continue
		}
		for _, t := range g.Targets {
			if h := inv.Host(t); h != nil {
				out = append(out, h.Name)
			}
		}
	}
	return out
}

func anyList(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = n
	}
	return out
}
