package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/troupe/troupe/internal/haproxy"
)

// loadBalancers are the lab's HAProxy hosts (short names).
func (s *site) loadBalancers() []string { return s.group("loadbalancer") }

// agents are the lab's agents (short names).
func (s *site) agents() []string { return s.group("agents") }

// group is the short names of the lab's hosts in group name.
func (s *site) group(name string) []string {
	var out []string
	for _, h := range s.l.Hosts {
		if len(h.Groups) > 0 && h.Groups[0] == name {
			out = append(out, h.Short)
		}
	}
	return out
}

// workerPID is the PID of the HAProxy process serving on lb: a reload
// starts a new one.
func (s *site) workerPID(lb string) string {
	for _, l := range strings.Split(s.ssh(lb, "echo 'show info' | socat stdio unix-connect:/run/haproxy/admin.sock"), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// adminStates are the compilers' administrative states in lb's HAProxy,
// from one `show servers state`: ready, drain or maint.
func (s *site) adminStates(lb string) map[string]string {
	out := map[string]string{}
	states, err := haproxy.ParseServersState(s.ssh(lb, "echo 'show servers state compilers' | socat stdio unix-connect:/run/haproxy/admin.sock"))
	if err != nil {
		s.t.Errorf("%s: show servers state: %v", lb, err)
	}
	for _, st := range states {
		out[st.Server] = st.Admin()
	}
	return out
}

// lbReloadScenario: a reload of HAProxy in the middle of a drain keeps the
// drained compiler out of the pool, on every load balancer. A compiler is
// drained through troupe, then each HAProxy is reloaded as an operator (or
// a package upgrade) would: the new process must show the compiler drained,
// the others ready. Then the compiler is set ready and each HAProxy reloaded
// again: the saved state is the live one, not a drain remembered forever.
func lbReloadScenario(ctx context.Context, t *testing.T, s *site) {
	const victim = "compile1"
	lbs := s.loadBalancers()
	if len(lbs) == 0 {
		t.Fatal("no load balancer in the lab")
	}
	reloadAll := func(want map[string]string) {
		t.Helper()
		for _, lb := range lbs {
			before := s.workerPID(lb)
			if before == "" {
				t.Fatalf("%s: no HAProxy answers on its admin socket", lb)
			}
			if out, rc := s.sshRC(lb, "systemctl reload haproxy"); rc != 0 {
				t.Fatalf("%s: systemctl reload haproxy: exit %d\n%s\n%s", lb, rc, out, s.l.Journal(lb, "haproxy", 20))
			}
			var after string
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if after = s.workerPID(lb); after != "" && after != before {
					break
				}
			}
			// The control: a new process answers, so the states below are
			// the ones it loaded, not the old process's.
			if after == "" || after == before {
				t.Fatalf("%s: no new HAProxy process within 15 s of the reload (worker %s → %q)", lb, before, after)
			}
			got := s.adminStates(lb)
			for c, w := range want {
				if got[c] != w {
					t.Errorf("%s: after the reload (worker %s → %s) %s is %s, want %s (all: %v)", lb, before, after, c, got[c], w, got)
				}
			}
			t.Logf("%s: reloaded (worker %s → %s): %v", lb, before, after, got)
		}
	}
	r := s.troupeRun(ctx, "run", "lb-server", "-i", s.inv, "-p", "state=drain", "--limit", victim+"."+s.l.Spec.Domain)
	if r.code != 0 {
		t.Fatalf("lb-server state=drain: exit %d\n%s", r.code, r.stderr)
	}
	reloadAll(map[string]string{victim: "drain", "compile2": "ready"})
	r = s.troupeRun(ctx, "run", "lb-server", "-i", s.inv, "-p", "state=ready", "--limit", victim+"."+s.l.Spec.Domain)
	if r.code != 0 {
		t.Fatalf("lb-server state=ready: exit %d\n%s", r.code, r.stderr)
	}
	reloadAll(map[string]string{victim: "ready", "compile2": "ready"})
}

// vipHolders are the load balancers whose eth0 carries the virtual IP.
func (s *site) vipHolders(lbs []string) []string {
	var out []string
	for _, lb := range lbs {
		if strings.Contains(s.ssh(lb, "ip -o -4 addr show dev eth0"), " "+s.l.VIP+"/") {
			out = append(out, lb)
		}
	}
	return out
}

// lbFailoverScenario: the load balancer that holds lb_name's virtual IP is
// halted (its link cut and its PID 1 killed, as a power loss), with the
// agents running through lb_name. keepalived on the other takes the address;
// the agents' runs that start after the move all succeed. Last on its
// suite: the halted host stays down.
func lbFailoverScenario(ctx context.Context, t *testing.T, s *site) {
	lbs := s.loadBalancers()
	if s.l.VIP == "" || len(lbs) != 2 {
		t.Fatalf("lb-failover needs the lab's two load balancers and lb_vip (lab.Spec.LoadBalancers 2); this site has %v, VIP %q", lbs, s.l.VIP)
	}
	holders := s.vipHolders(lbs)
	if len(holders) != 1 {
		t.Fatalf("the VIP %s is on %v: want exactly one load balancer", s.l.VIP, holders)
	}
	active, standby := holders[0], lbs[0]
	if standby == active {
		standby = lbs[1]
	}
	t.Logf("VIP %s on %s; %s stands by", s.l.VIP, active, standby)
	s.statusSaysVIP(ctx, 0, active, standby)
	s.prometheusSaysVIP(ctx, active, standby)

	agents := startAgentLoop(t, s, s.agents()...)
	for deadline := time.Now().Add(3 * time.Minute); len(agents.snapshot()) < len(s.agents()) && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	before := agents.snapshot()
	if len(before) == 0 {
		agents.stop()
		t.Fatal("no agent run finished on the healthy site within 3 minutes")
	}

	// Halt it while it carries an agent's session, if one comes within a
	// minute: the run in flight is the one no failover can save, and is
	// counted apart below.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		smp, _ := parseLBStat(s.ssh(active, showStat))
		n := 0
		for _, c := range smp.scur {
			n += c
		}
		if n > 0 {
			break
		}
	}
	halted := time.Now()
	if err := s.l.Halt(active); err != nil {
		agents.abort()
		t.Fatal(err)
	}
	*s.traffic = "" // the agents' load balancer is about to change
	t.Logf("halted %s at %s", active, halted.Format("15:04:05.0"))

	// The address answers again when a TCP connection to it reaches an
	// HAProxy: from this machine (on the lab's bridge, as the agents are),
	// once the standby's gratuitous ARP has moved the address.
	var moved time.Time
	for deadline := halted.Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(s.l.VIP, "8140"), 300*time.Millisecond)
		if err == nil {
			c.Close()
			moved = time.Now()
			break
		}
	}
	if moved.IsZero() {
		agents.abort()
		t.Fatalf("the VIP %s did not answer on 8140 within a minute of halting %s\nkeepalived on %s:\n%s", s.l.VIP, active, standby, s.l.Journal(standby, "keepalived", 20))
	}
	took := moved.Sub(halted)
	seconds(t, "lb-failover: VIP answers again after the active LB halted", took)
	if h := s.vipHolders([]string{standby}); len(h) != 1 {
		t.Errorf("the VIP answers, but %s does not hold it", standby)
	}
	// keepalived's bound: the standby declares the master dead after
	// 3 × advert_int + skew (3.6 s with advert_int 1 and priority 100;
	// RFC 3768 §6.1, VRRPv2, keepalived's default), then announces the address.
	const bound = 6 * time.Second
	if took > bound {
		t.Errorf("the VIP answered %s after the halt, over the bound of %s", took.Round(100*time.Millisecond), bound)
	}
	t.Logf("VIP answered on %s %s after the halt", standby, took.Round(100*time.Millisecond))
	s.statusSaysVIP(ctx, 1, standby, active) // exit 1: the halted host is unreachable

	// Two runs per agent that start after the move, through the standby.
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if len(runsAfter(agents.snapshot(), moved)) >= 2*len(s.agents()) {
			break
		}
	}
	runs := agents.stop()
	after := runsAfter(runs, moved)
	var inFlight, failedAfter []string
	for _, r := range runs {
		switch {
		case r.start.Before(moved) && r.end.After(halted):
			inFlight = append(inFlight, fmt.Sprintf("%s %s–%s rc %d %s", r.agent, r.start.Format("15:04:05"), r.end.Format("15:04:05"), r.rc, oneLine(r.errors)))
		case r.start.After(moved) && r.failed():
			failedAfter = append(failedAfter, fmt.Sprintf("%s %s rc %d %s", r.agent, r.start.Format("15:04:05"), r.rc, oneLine(r.errors)))
		}
	}
	t.Logf("runs in flight during the move (counted apart): %d %v", len(inFlight), inFlight)
	if len(after) < 2*len(s.agents()) {
		t.Errorf("%d runs started after the move, want at least %d: not enough to show the agents go on", len(after), 2*len(s.agents()))
	}
	if len(failedAfter) > 0 {
		t.Errorf("%d of %d runs started after the move failed: %v", len(failedAfter), len(after), failedAfter)
	}
	record(t, "lb-failover: failed runs started after the move", float64(len(failedAfter)), "runs")
	record(t, "lb-failover: runs started after the move", float64(len(after)), "runs")
	t.Logf("%d runs started after the move, %d failed", len(after), len(failedAfter))
}

// statusSaysVIP: `troupe status` exits code and names holder as the load
// balancer holding the VIP and other as not holding it (for a halted host:
// unreachable, which status flags).
func (s *site) statusSaysVIP(ctx context.Context, code int, holder, other string) {
	s.t.Helper()
	st, got := s.status(ctx)
	if got != code {
		s.t.Errorf("troupe status: exit %d, want %d\n%s", got, code, st.problems())
	}
	for _, c := range []struct {
		short string
		holds bool
	}{{holder, true}, {other, false}} {
		h := st.host(c.short + "." + s.l.Spec.Domain)
		switch {
		case h == nil:
			s.t.Errorf("troupe status has no row for %s", c.short)
		case c.holds && (h.Pool == nil || h.Pool.VIP != s.l.VIP || !h.Pool.HoldsVIP):
			s.t.Errorf("troupe status does not say %s holds the VIP %s: %+v\n%s", c.short, s.l.VIP, h.Pool, st.problems())
		case !c.holds && h.Pool != nil && h.Pool.HoldsVIP:
			s.t.Errorf("troupe status says %s holds the VIP too\n%s", c.short, st.problems())
		case !c.holds && code != 0 && !strings.Contains(st.problems(), c.short+"."+s.l.Spec.Domain):
			s.t.Errorf("troupe status does not flag the halted %s\n%s", c.short, st.problems())
		}
	}
}

// prometheusSaysVIP: `troupe status --format prometheus`, read by
// Prometheus's own text parser, has troupe_lb_vip_active 1 for holder and
// 0 for other, and every host up.
func (s *site) prometheusSaysVIP(ctx context.Context, holder, other string) {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, s.bin, "status", "-i", s.inv, "--format", "prometheus")
	cmd.Dir = s.dir
	out, err := cmd.Output()
	if err != nil {
		s.t.Errorf("troupe status --format prometheus: %v\n%s", err, out)
		return
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(out)))
	if err != nil {
		s.t.Errorf("Prometheus's parser refuses troupe status --format prometheus: %v\n%s", err, out)
		return
	}
	got := map[string]float64{}
	for _, m := range fams["troupe_lb_vip_active"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "host" {
				got[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	d := "." + s.l.Spec.Domain
	if len(got) != 2 || got[holder+d] != 1 || got[other+d] != 0 {
		s.t.Errorf("troupe_lb_vip_active %v, want %s 1 and %s 0", got, holder, other)
	}
	hosts := 0
	for _, m := range fams["troupe_host_up"].GetMetric() {
		hosts++
		if m.GetGauge().GetValue() != 1 {
			s.t.Errorf("troupe_host_up %v on the healthy site", m)
		}
	}
	if hosts == 0 {
		s.t.Error("no troupe_host_up samples")
	}
}
