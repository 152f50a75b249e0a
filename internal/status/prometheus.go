package status

import (
	"fmt"
	"sort"
	"strings"
)

// Prometheus writes the reading as gauges in Prometheus's text exposition
// format (version 0.0.4), for node_exporter's textfile collector: write it
// to a temporary file in the collector's directory and rename it to
// troupe.prom, so the collector never reads half a file. Every family is
// listed with its HELP and TYPE whether or not the site has samples for
// it, so a dashboard's queries find the names.
func Prometheus(site *Site) string {
	var b strings.Builder
	fam := func(name, help string, samples []sample) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, s := range samples {
			b.WriteString(name)
			if len(s.labels) > 0 {
				b.WriteByte('{')
				for i := 0; i < len(s.labels); i += 2 {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=\"%s\"", s.labels[i], escapeLabel(s.labels[i+1]))
				}
				b.WriteByte('}')
			}
			fmt.Fprintf(&b, " %s\n", formatValue(s.value))
		}
	}
	now := site.Time
	healthy := 0.0
	if site.Healthy {
		healthy = 1
	}
	fam("troupe_site_healthy", "1 when no host is bad (troupe status exits 0).", []sample{{nil, healthy}})
	fam("troupe_status_wall_seconds", "How long the reading took.", []sample{{nil, float64(site.WallMS) / 1000}})

	var up, level, role, vip, caActive, pool, sessions, free, total, cert, caCert, crl, lag, deployAge []sample
	for _, h := range site.Hosts {
		reached := 1.0
		if h.Error != "" {
			reached = 0
		}
		up = append(up, sample{[]string{"host", h.Name}, reached})
		level = append(level, sample{[]string{"host", h.Name}, float64(h.Level)})
		for _, r := range h.Roles {
			role = append(role, sample{[]string{"host", h.Name, "role", r}, 1})
		}
		if p := h.Pool; p != nil && p.VIP != "" && p.VIPError == "" && h.Error == "" {
			v := 0.0
			if p.HoldsVIP {
				v = 1
			}
			vip = append(vip, sample{[]string{"host", h.Name, "vip", p.VIP}, v})
		}
		if active, ok := h.caActive(); ok {
			caActive = append(caActive, sample{[]string{"host", h.Name}, active})
		}
		for _, v := range h.HAProxy {
			if v.Error != "" {
				continue
			}
			pool = append(pool, sample{[]string{"host", h.Name, "lb", v.LB, "state", v.State}, 1})
			sessions = append(sessions, sample{[]string{"host", h.Name, "lb", v.LB}, float64(v.Sessions)})
		}
		if s := h.Server; s != nil && s.JRuby != nil {
			free = append(free, sample{[]string{"host", h.Name}, float64(s.JRuby.Free)})
			total = append(total, sample{[]string{"host", h.Name}, float64(s.JRuby.Total)})
		}
		if c := h.Cert; c != nil && c.Error == "" && !c.NotAfter.IsZero() {
			cert = append(cert, sample{[]string{"host", h.Name}, c.NotAfter.Sub(now).Seconds()})
		}
		if r := h.Replica; r != nil && h.spec.has(RoleCA) && r.Error == "" && h.Error == "" {
			lag = append(lag, sample{[]string{"host", h.Name}, float64(r.Lag)})
		}
		if c := h.Code; c != nil {
			for _, e := range c.Envs {
				if !e.Deployed.IsZero() {
					deployAge = append(deployAge, sample{[]string{"host", h.Name, "environment", e.Name}, now.Sub(e.Deployed).Seconds()})
				}
			}
		}
		if ca := h.CA; ca != nil {
			for _, x := range ca.Certs {
				caCert = append(caCert, sample{[]string{"host", h.Name, "name", x.Name}, x.Time.Sub(now).Seconds()})
			}
			for _, x := range ca.CRLs {
				crl = append(crl, sample{[]string{"host", h.Name, "name", x.Name}, x.Time.Sub(now).Seconds()})
			}
		}
	}
	fam("troupe_host_up", "1 when troupe reached the host and read it, 0 when not (unreachable, refused, timeout).", up)
	fam("troupe_host_level", "The host's health: 0 ok, 1 warn, 2 bad.", level)
	fam("troupe_host_role", "The host's roles in the site (1 for each).", role)
	fam("troupe_lb_vip_active", "1 on the load balancer that holds the virtual IP (lb_vip), 0 on one that stands by.", vip)
	fam("troupe_ca_active", "1 on the CA host that is the site's CA, 0 on a standby CA or a CA that ca-failover fenced.", caActive)
	fam("troupe_compiler_pool_state", "A server's state in one HAProxy (1 for the state it is in: UP, DOWN, DRAIN, MAINT, ...).", pool)
	fam("troupe_compiler_sessions", "A server's current sessions in one HAProxy.", sessions)
	fam("troupe_jruby_free", "Free JRuby instances of a Puppet Server.", free)
	fam("troupe_jruby_total", "JRuby instances of a Puppet Server.", total)
	fam("troupe_cert_expiry_seconds", "Seconds until the host's own certificate expires (negative: expired).", cert)
	fam("troupe_ca_cert_expiry_seconds", "Seconds until a CA certificate expires.", caCert)
	fam("troupe_crl_next_update_seconds", "Seconds until a CRL's next update (negative: stale).", crl)
	fam("troupe_code_deploy_age_seconds", "Seconds since r10k last deployed an environment on a server (its .r10k-deploy.json's finished_at).", deployAge)
	fam("troupe_ca_replica_lag_seconds", "How long the CA's newest change has waited unpushed to the standby CA (0: the standby holds what the CA holds).", lag)
	return b.String()
}

type sample struct {
	labels []string // name, value, name, value ...
	value  float64
}

// escapeLabel escapes a label value as the exposition format asks:
// backslash, double quote and line feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

// MetricNames are the metric families Prometheus writes, sorted: what the
// README documents (a test keeps the two the same).
func MetricNames() []string {
	var names []string
	for _, l := range strings.Split(Prometheus(&Site{}), "\n") {
		if n, ok := strings.CutPrefix(l, "# TYPE "); ok {
			names = append(names, strings.Fields(n)[0])
		}
	}
	sort.Strings(names)
	return names
}

// caActive is 1 on the host that is the site's CA (the CA host unless
// ca-failover fenced it, or the standby it promoted), 0 on a standby or a
// fenced CA; not ok for other hosts and hosts not read.
func (h *Host) caActive() (float64, bool) {
	if h.Error != "" {
		return 0, false
	}
	state := ""
	if h.Replica != nil {
		state = h.Replica.State
	}
	switch {
	case h.spec.has(RoleCA):
		return map[bool]float64{true: 1}[state != "fenced"], true
	case h.spec.has(RoleStandby):
		return map[bool]float64{true: 1}[state == "active"], true
	}
	return 0, false
}
