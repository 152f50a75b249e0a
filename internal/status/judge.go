package status

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/secret"
)

// Judge applies the health rules to the filled rows and returns the site:
// each cell's level, each row's (its worst cell), the site's (its worst
// row), and the problems listed under the table.
func Judge(hosts []*Host, now time.Time, horizon time.Duration) *Site {
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	site := &Site{Time: now.UTC(), Hosts: hosts, Horizon: int(horizon.Hours() / 24), Problems: []Problem{}}
	j := judge{site: site, now: now, horizon: horizon}
	site.Control = control(hosts)
	j.pools()
	for _, h := range hosts {
		j.host(h)
	}
	j.revocations(hosts)
	j.drift()
	j.vips()
	j.replicas()
	for _, h := range hosts {
		for _, p := range site.Problems {
			if p.Host == h.Name {
				h.Level = max(h.Level, p.Level)
			}
		}
		site.Level = max(site.Level, h.Level)
	}
	// bad first, then warnings; each in the table's host order
	order := map[string]int{}
	for i, h := range hosts {
		order[h.Name] = i
	}
	sort.SliceStable(site.Problems, func(a, b int) bool {
		pa, pb := site.Problems[a], site.Problems[b]
		if pa.Level != pb.Level {
			return pa.Level > pb.Level
		}
		return order[pa.Host] < order[pb.Host]
	})
	site.Healthy = site.Level < Bad
	scrub(site)
	return site
}

type judge struct {
	site    *Site
	now     time.Time
	horizon time.Duration
}

func (j *judge) flag(h *Host, lvl Level, what, format string, args ...any) Level {
	if lvl > OK {
		j.site.Problems = append(j.site.Problems, Problem{Host: h.Name, Level: lvl, What: what, Text: fmt.Sprintf(format, args...)})
	}
	return lvl
}

// control is the control repository's branches, from the compiler that
// asked for them.
func control(hosts []*Host) *Control {
	for _, h := range hosts {
		if !h.spec.Heads {
			continue
		}
		c := &Control{From: h.Name, Branches: map[string]string{}}
		sec, ok := h.secs["heads"]
		switch {
		case h.Error != "" && !ok:
			c.Error = "not read: " + h.Name + " " + h.Error
		case !ok:
			c.Error = "no answer"
		default:
			var remote string
			remote, c.Branches = parseHeads(sec.Body)
			c.Remote = secret.MaskURL(remote)
			if _, rest, ok := strings.Cut(sec.Body, "\n"); ok && strings.HasPrefix(sec.Body, "remote ") {
				sec.Body = rest // git's own words, not the URL line
			}
			// masked before the message is cut, which could cut the password
			sec.Body = maskPassword(sec.Body, remote)
			if msg := sec.failure(); msg != "" {
				c.Error = "git ls-remote: " + msg
			} else if len(c.Branches) == 0 {
				c.Error = "git ls-remote: no branches"
			}
		}
		return c
	}
	return nil
}

func (j *judge) host(h *Host) {
	if h.Error != "" {
		j.flag(h, Bad, "host", "%s", h.Error)
	}
	for i := range h.Packages {
		p := &h.Packages[i]
		if p.Version == "" {
			p.Level = j.flag(h, Bad, "packages", "%s is not installed", p.Name)
		}
	}
	for i := range h.Services {
		s := &h.Services[i]
		switch s.State {
		case "active":
		case "timeout":
			s.Level = j.flag(h, Bad, "services", "%s: no answer (timeout)", s.Name)
		default:
			s.Level = j.flag(h, Bad, "services", "%s is %s", s.Name, s.State)
		}
	}
	if c := h.Cert; c != nil {
		if c.Error != "" {
			c.Level = j.flag(h, Bad, "cert", "certificate: %s", c.Error)
		} else {
			c.DaysLeft = j.days(c.NotAfter)
			c.Level = j.expiry(h, "cert", "certificate", c.NotAfter)
		}
	}
	if ca := h.CA; ca != nil {
		if ca.Error != "" {
			ca.Level = j.flag(h, Bad, "ca", "%s", ca.Error)
		}
		for _, list := range []struct {
			xs   []Expiry
			what string
		}{{ca.Certs, "CA certificate"}, {ca.CRLs, "CRL of"}} {
			for i := range list.xs {
				x := &list.xs[i]
				x.DaysLeft = j.days(x.Time)
				ca.Level = max(ca.Level, j.expiry(h, "ca", list.what+" "+x.Name, x.Time))
			}
		}
	}
	if s := h.Server; s != nil {
		j.server(h, s)
	}
	if p := h.Pool; p != nil && p.Error != "" {
		p.Level = j.flag(h, Bad, "haproxy", "%s", p.Error)
	}
	if c := h.Code; c != nil {
		if c.Error != "" {
			c.Level = j.flag(h, Bad, "code", "environments: %s", c.Error)
		}
		for _, e := range c.Envs {
			if e.Error != "" {
				c.Level = max(c.Level, j.flag(h, Warn, "code", "environment %s: %s", e.Name, e.Error))
			}
		}
	}
	if p := h.PuppetDB; p != nil {
		switch {
		case p.Error != "":
			p.Level = j.flag(h, Bad, "puppetdb", "PuppetDB %s", p.Error)
		case p.State != "running":
			p.Level = j.flag(h, Bad, "puppetdb", "PuppetDB is %s", p.State)
		}
	}
}

// revocations flags every host whose certificate the CA's CRL lists (by
// issuer CN and serial): `troupe run revoke` put it there, and Puppet
// Server refuses the host though its certificate has not expired.
func (j *judge) revocations(hosts []*Host) {
	var revoked map[string]map[string]bool
	for _, h := range hosts {
		if h.CA != nil && h.CA.revoked != nil {
			revoked = h.CA.revoked
		}
	}
	if revoked == nil {
		return
	}
	for _, h := range hosts {
		c := h.Cert
		if c == nil || c.Error != "" || c.Serial == "" || !revoked[c.Issuer][c.Serial] {
			continue
		}
		c.Revoked = true
		c.Level = j.flag(h, Bad, "cert", "certificate (serial %s) is revoked: the CRL of %s lists it", c.Serial, c.Issuer)
	}
}

func (j *judge) server(h *Host, s *Server) {
	switch {
	case s.Error != "":
		s.Level = j.flag(h, Bad, "status", "puppetserver status: %s", s.Error)
	case s.Simple != "running":
		s.Level = j.flag(h, Bad, "status", "puppetserver is %s", s.Simple)
	}
	for _, st := range s.NotRunning {
		s.Level = max(s.Level, j.flag(h, Bad, "status", "puppetserver service %s is %s", st.Name, st.State))
	}
	if s.criticalErr != "" && s.Error == "" {
		s.Level = max(s.Level, j.flag(h, Warn, "status", "services status: %s", s.criticalErr))
	}
	// None free is shown, not judged: every compile borrows one, so a busy
	// healthy server has none free for a moment.
	if s.JRubyError != "" && s.Error == "" {
		s.JRubyLevel = j.flag(h, Warn, "jruby", "%s", s.JRubyError)
	}
}

func (j *judge) days(t time.Time) int {
	return int(math.Floor(t.Sub(j.now).Hours() / 24))
}

// expiry judges a not-after or next-update date against now and the horizon.
func (j *judge) expiry(h *Host, what, name string, t time.Time) Level {
	switch {
	case !t.After(j.now):
		return j.flag(h, Bad, what, "%s expired on %s", name, t.Format(time.DateOnly))
	case t.Before(j.now.Add(j.horizon)):
		return j.flag(h, Warn, what, "%s expires on %s (in %d days)", name, t.Format(time.DateOnly), j.days(t))
	}
	return OK
}

// pools gives every server (compiler or CA) its view in each HAProxy, and
// flags a compiler missing from a readable HAProxy.
func (j *judge) pools() {
	var lbs []*Host
	for _, h := range j.site.Hosts {
		if h.spec.has(RoleLB) {
			lbs = append(lbs, h)
		}
	}
	for _, h := range j.site.Hosts {
		if !h.spec.server() {
			continue
		}
		sn := shortName(h.Name)
		for _, lb := range lbs {
			if lb.Pool == nil || lb.Pool.Error != "" || lb.Error != "" {
				if h.spec.has(RoleCompiler) {
					h.HAProxy = append(h.HAProxy, LBView{LB: lb.Name, State: "?", Error: "HAProxy not read", Level: Warn})
				}
				continue
			}
			found := false
			for _, s := range lb.Pool.Servers {
				if s.Server != sn && s.Server != h.Name {
					continue
				}
				found = true
				v := LBView{LB: lb.Name, Backend: s.Backend, State: s.State, Admin: s.Admin, Sessions: s.Sessions, Check: s.Check}
				v.Level = j.lbLevel(h, &v)
				h.HAProxy = append(h.HAProxy, v)
			}
			if !found && h.spec.has(RoleCompiler) {
				v := LBView{LB: lb.Name, State: "absent", Error: "not a server in this HAProxy"}
				v.Level = j.flag(h, Bad, "haproxy", "%s: not a server in HAProxy %s", sn, lb.Name)
				h.HAProxy = append(h.HAProxy, v)
			}
		}
	}
}

// lbLevel judges one HAProxy's view of a server: UP is ok; drained or in
// maintenance by an operator is a warning (a deliberate state, shown as
// DRAIN or MAINT); anything else (DOWN, NOLB, going up or down) is bad.
func (j *judge) lbLevel(h *Host, v *LBView) Level {
	st := strings.ToUpper(v.State)
	switch {
	case v.Admin == "drain" || strings.HasPrefix(st, "DRAIN"):
		v.State = "DRAIN"
		return j.flag(h, Warn, "haproxy", "drained in %s (%s/%s, %d sessions)", v.LB, v.Backend, shortName(h.Name), v.Sessions)
	case v.Admin == "maint" || strings.HasPrefix(st, "MAINT"):
		v.State = "MAINT"
		return j.flag(h, Warn, "haproxy", "in maintenance in %s (%s/%s)", v.LB, v.Backend, shortName(h.Name))
	case st == "UP":
		return OK
	case st == "NO CHECK":
		return j.flag(h, Warn, "haproxy", "not health-checked by %s", v.LB)
	}
	return j.flag(h, Bad, "haproxy", "%s in %s (%s/%s, check %s)", v.State, v.LB, v.Backend, shortName(h.Name), dash(v.Check))
}

// drift compares each server's deployed commits with the control
// repository's branches and each compiler's with the other compilers'.
func (j *judge) drift() {
	var servers, compilers []*Host
	for _, h := range j.site.Hosts {
		if h.Code == nil || h.Code.Error != "" {
			continue
		}
		servers = append(servers, h)
		if h.spec.has(RoleCompiler) {
			compilers = append(compilers, h)
		}
	}
	ctl := j.site.Control
	known := ctl != nil && ctl.Error == "" && len(ctl.Branches) > 0
	names := map[string]bool{}
	for _, h := range servers {
		for _, e := range h.Code.Envs {
			names[e.Name] = true
		}
	}
	if known {
		for n := range ctl.Branches {
			names[n] = true
		}
	}
	for _, env := range slices.Sorted(maps.Keys(names)) {
		peers := majority(compilers, env)
		for _, h := range servers {
			e := findEnv(h.Code, env)
			var drift, text string
			lvl := Bad
			switch {
			case known && ctl.Branches[env] == "":
				if e != nil {
					drift, text, lvl = "stale", fmt.Sprintf("environment %s is deployed but the control repository has no such branch", env), Warn
				}
			case known && e == nil:
				drift, text = "missing", fmt.Sprintf("environment %s is not deployed (control repository at %s)", env, short(ctl.Branches[env]))
			case known && e.Commit != "" && e.Commit != ctl.Branches[env]:
				drift, text = "behind", fmt.Sprintf("environment %s at %s, control repository at %s", env, short(e.Commit), short(ctl.Branches[env]))
			}
			if drift == "" && h.spec.has(RoleCompiler) && peers != "" {
				switch {
				case e == nil:
					drift, text = "missing", fmt.Sprintf("environment %s is not deployed (other compilers at %s)", env, short(peers))
				case e.Commit != "" && e.Commit != peers:
					drift, text = "differs", fmt.Sprintf("environment %s at %s, the other compilers at %s", env, short(e.Commit), short(peers))
				}
			}
			if drift == "" {
				continue
			}
			if e == nil {
				h.Code.Envs = append(h.Code.Envs, Env{Name: env})
				e = &h.Code.Envs[len(h.Code.Envs)-1]
			}
			e.Drift = drift
			h.Code.Level = max(h.Code.Level, j.flag(h, lvl, "code", "drift: %s", text))
		}
	}
	for _, h := range servers {
		sort.Slice(h.Code.Envs, func(a, b int) bool { return h.Code.Envs[a].Name < h.Code.Envs[b].Name })
	}
}

// majority is the commit most compilers have for env, when one commit has
// more compilers than any other ("" on a tie or when none has it).
func majority(compilers []*Host, env string) string {
	count := map[string]int{}
	for _, h := range compilers {
		if e := findEnv(h.Code, env); e != nil && e.Commit != "" {
			count[e.Commit]++
		}
	}
	best, n, tie := "", 0, false
	for c, k := range count {
		switch {
		case k > n:
			best, n, tie = c, k, false
		case k == n:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

func findEnv(c *Code, name string) *Env {
	for i := range c.Envs {
		if c.Envs[i].Name == name {
			return &c.Envs[i]
		}
	}
	return nil
}

// short is a commit's first 7 characters.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func shortName(host string) string {
	s, _, _ := strings.Cut(host, ".")
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// vips flags a virtual IP that no load balancer holds (agents cannot reach
// lb_name) or that several hold (two VRRP masters, each answering for it),
// and a load balancer whose addresses could not be read.
func (j *judge) vips() {
	byVIP := map[string][]*Host{}
	var order []string
	for _, h := range j.site.Hosts {
		if p := h.Pool; h.spec.has(RoleLB) && p != nil && p.VIP != "" {
			if byVIP[p.VIP] == nil {
				order = append(order, p.VIP)
			}
			byVIP[p.VIP] = append(byVIP[p.VIP], h)
		}
	}
	for _, vip := range order {
		var holders []string
		unread := false
		for _, h := range byVIP[vip] {
			switch {
			case h.Error != "":
				unread = true
			case h.Pool.VIPError != "":
				unread = true
				h.Pool.Level = max(h.Pool.Level, j.flag(h, Warn, "haproxy", "lb_vip %s: %s", vip, h.Pool.VIPError))
			case h.Pool.HoldsVIP:
				holders = append(holders, shortName(h.Name))
			}
		}
		for _, h := range byVIP[vip] {
			switch {
			case len(holders) > 1 && h.Pool.HoldsVIP:
				h.Pool.Level = max(h.Pool.Level, j.flag(h, Bad, "haproxy", "lb_vip %s held by %s at once: more than one VRRP master", vip, strings.Join(holders, " and ")))
			case len(holders) == 0 && !unread && h.Error == "":
				h.Pool.Level = max(h.Pool.Level, j.flag(h, Bad, "haproxy", "no load balancer holds lb_vip %s", vip))
			}
		}
	}
}

// replicaBehind is how long a change of the CA may wait unpushed before it
// is bad: the path unit pushes within a second, the timer retries a failed
// push 30 s after it (roles/templates/troupe-ca-replica.timer.tmpl).
const replicaBehind = 60 * time.Second

// replicas judges the standby CA's copy: after plan ca-failover, the old
// CA fenced (bad until the inventory is swapped) and the standby active
// (a warning: the site works, the inventory is out of date); on the CA, a path unit that does
// not watch, a failed last push or a change waiting longer than
// replicaBehind; on the standby, a puppetserver that runs (a second CA), no
// snapshot, or a snapshot whose serial is not the one the CA pushed last.
func (j *judge) replicas() {
	var pushed *Replica
	for _, h := range j.site.Hosts {
		r := h.Replica
		if r == nil || !h.spec.has(RoleCA) || h.Error != "" {
			continue
		}
		switch {
		case r.State == "fenced":
			r.Level = j.flag(h, Bad, "ca", "plan ca-failover fenced this CA: the standby is the site's CA; swap ca and ca_standby in the inventory and run bootstrap")
		case r.Error != "":
			r.Level = j.flag(h, Bad, "ca", "standby CA: %s", r.Error)
		case r.Watching != "active":
			r.Level = j.flag(h, Bad, "ca", "troupe-ca-replica.path is %s: the CA's changes are not pushed to the standby", orDash(r.Watching))
		case !r.InSync && r.Result != "success":
			r.Level = j.flag(h, Bad, "ca", "the last push to the standby CA failed (%s); the CA's changes of the last %s wait for the timer's retry",
				orDash(r.Result), time.Duration(r.Lag)*time.Second)
		case !r.InSync && time.Duration(r.Lag)*time.Second > replicaBehind:
			r.Level = j.flag(h, Bad, "ca", "the standby CA is %s behind the CA (serial %s pushed, %s now)", time.Duration(r.Lag)*time.Second, r.Pushed, r.Serial)
		case r.InSync:
			pushed = r
		}
	}
	for _, h := range j.site.Hosts {
		r := h.Replica
		if r == nil || !h.spec.has(RoleStandby) || h.Error != "" {
			continue
		}
		switch {
		case r.State == "active":
			r.Level = j.flag(h, Warn, "ca", "the site's CA since plan ca-failover (puppetserver %s): swap ca and ca_standby in the inventory and run bootstrap", orDash(r.Server))
		case r.serving():
			r.Level = j.flag(h, Bad, "ca", "puppetserver is %s on the standby CA: two CAs may sign (a failover stops the old one first)", r.Server)
		case r.Error != "":
			r.Level = j.flag(h, Bad, "ca", "standby CA: %s", r.Error)
		case pushed != nil && !hexSerialEqual(r.Serial, pushed.Pushed):
			r.Level = j.flag(h, Bad, "ca", "the standby's snapshot has serial %s, the CA pushed %s", r.Serial, pushed.Pushed)
		}
	}
}

// serving: the standby's puppetserver runs, or is on its way to.
func (r *Replica) serving() bool {
	return r.Server == "active" || r.Server == "activating" || r.Server == "reloading"
}

// hexSerialEqual compares two of the CA's serial files' hex numbers.
func hexSerialEqual(a, b string) bool {
	trim := func(s string) string { return strings.TrimLeft(strings.ToUpper(strings.TrimSpace(s)), "0") }
	return trim(a) == trim(b)
}
