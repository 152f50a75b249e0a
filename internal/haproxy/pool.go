package haproxy

import (
	"fmt"
	"slices"
	"strings"
)

// Up says whether a `show stat` status means the server takes new sessions:
// "UP", or "no check" (HAProxy sends it traffic without checking it). A
// server going down ("UP 1/3": a check failed), DRAIN, NOLB, MAINT and DOWN
// do not count: a capacity check would rather wait than count on one.
func Up(status string) bool { return status == "UP" || status == "no check" }

// Pool is one backend's servers as every HAProxy of the site sees them.
type Pool struct {
	Backend string
	LBs     []string                     // in the order given
	Servers []string                     // every server any HAProxy lists in the backend, sorted
	status  map[string]map[string]string // server → LB → status; absent: not in that HAProxy's backend
}

// LBStat is one HAProxy's answer to `show stat`.
type LBStat struct {
	LB, Stat string
}

// NewPool reads the backend's servers out of each HAProxy's `show stat`.
func NewPool(backend string, answers []LBStat) Pool {
	p := Pool{Backend: backend, status: map[string]map[string]string{}}
	for _, a := range answers {
		p.LBs = append(p.LBs, a.LB)
		for _, s := range ParseStat(a.Stat) {
			if s.Backend != backend {
				continue
			}
			if p.status[s.Server] == nil {
				p.status[s.Server] = map[string]string{}
				p.Servers = append(p.Servers, s.Server)
			}
			p.status[s.Server][a.LB] = s.Status
		}
	}
	slices.Sort(p.Servers)
	return p
}

// UpEverywhere: UP in every HAProxy. With two HAProxies a server one of
// them marks DOWN is not counted: an agent sent there by that one fails.
func (p Pool) UpEverywhere(server string) bool {
	for _, lb := range p.LBs {
		if st, ok := p.status[server][lb]; !ok || !Up(st) {
			return false
		}
	}
	return len(p.LBs) > 0
}

// upAnywhere: some HAProxy sends it new sessions.
func (p Pool) upAnywhere(server string) bool {
	for _, lb := range p.LBs {
		if st, ok := p.status[server][lb]; ok && Up(st) {
			return true
		}
	}
	return false
}

// notUp describes a server not UP everywhere: "compile3 DOWN", or with
// HAProxies that disagree "compile3 DOWN on lb2, absent on lb3".
func (p Pool) notUp(server string) string {
	var parts []string
	seen := map[string]bool{}
	for _, lb := range p.LBs {
		st, ok := p.status[server][lb]
		if !ok {
			st = "absent"
		}
		if Up(st) {
			continue
		}
		seen[st] = true
		parts = append(parts, st+" on "+lb)
	}
	if len(seen) == 1 && len(parts) == len(p.LBs) {
		for st := range seen {
			return server + " " + st
		}
	}
	return server + " " + strings.Join(parts, ", ")
}

// Leaving is the decision on one server leaving the pool (drain or maint).
type Leaving struct {
	Backend   string
	Server    string
	Verb      string   // "draining", "putting in maintenance"
	InPool    bool     // UP in some HAProxy: its leaving takes capacity away
	Remaining int      // the other servers UP in every HAProxy
	Total     int      // the servers of the backend
	Out       []string // the other servers not UP everywhere, described
	Min       int
}

// Leave decides whether server may leave with at least min others UP in
// every HAProxy. A server no HAProxy has UP (already drained, in
// maintenance, DOWN or absent) takes nothing away by leaving: it may,
// whatever the others' state, so a compiler stuck out of the pool can be
// worked on.
func (p Pool) Leave(server, state string, min int) Leaving {
	l := Leaving{Backend: p.Backend, Server: server, Verb: "draining", InPool: p.upAnywhere(server), Total: len(p.Servers), Min: min}
	if state == "maint" {
		l.Verb = "putting in maintenance"
	}
	if _, listed := p.status[server]; !listed {
		l.Total++ // the server's own count, though no HAProxy lists it
	}
	for _, s := range p.Servers {
		if s == server {
			continue
		}
		if p.UpEverywhere(s) {
			l.Remaining++
		} else {
			l.Out = append(l.Out, p.notUp(s))
		}
	}
	return l
}

// OK: the server may leave.
func (l Leaving) OK() bool { return !l.InPool || l.Remaining >= l.Min }

// String says what leaving does to the pool, e.g. "draining compile2 would
// leave 1 of 3 compilers UP (compile3 DOWN), below min_ready 2".
func (l Leaving) String() string {
	what := l.Verb + " " + l.Server
	if l.Verb == "putting in maintenance" {
		what = "putting " + l.Server + " in maintenance"
	}
	if !l.InPool {
		return fmt.Sprintf("%s takes nothing from the pool: no HAProxy has it UP", what)
	}
	out := ""
	if len(l.Out) > 0 {
		out = " (" + strings.Join(l.Out, ", ") + ")"
	}
	cmp := "below"
	if l.OK() {
		cmp = "not below"
	}
	return fmt.Sprintf("%s would leave %d of %d %s UP%s, %s min_ready %d", what, l.Remaining, l.Total, l.Backend, out, cmp, l.Min)
}
