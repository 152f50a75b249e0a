package step

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/haproxy"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
)

// fakeHAProxy answers the runtime API on a fakeConn like HAProxy 2.6 does:
// `show servers state` and `show stat` in the lab's real format (the rows
// of fixtures/status/lb-healthy.txt, one per server, with the server's
// state written in), and `set server` changes the state.
type fakeHAProxy struct {
	conn    *fakeConn
	mu      sync.Mutex
	servers map[string]*fakeServer // in backend compilers
	stats   int                    // `show stat` readings so far
	// onStat runs before each `show stat` answer, with the reading's number
	// (1 first): a test changes the pool between readings with it.
	onStat func(n int)
}

type fakeServer struct {
	up    bool // its health check passes
	admin int  // srv_admin_state bits: haproxy.AdmForcedDrain, AdmForcedMaint
}

func newFakeHAProxy(t *testing.T, servers map[string]bool) *fakeHAProxy {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/status/lb-healthy.txt")
	if err != nil {
		t.Fatal(err)
	}
	stateHead, stateRow := fixtureRows(t, string(b), "lbstate", "# be_id")
	statHead, statRow := fixtureRows(t, string(b), "lbstat", "# pxname")
	h := &fakeHAProxy{conn: newFake(t), servers: map[string]*fakeServer{}}
	for name, up := range servers {
		h.servers[name] = &fakeServer{up: up}
	}
	h.conn.on("show servers state", func(string) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := "1\n" + stateHead + "\n"
		for _, name := range h.names() {
			s := h.servers[name]
			op := 0
			if s.up {
				op = 2
			}
			f := strings.Fields(stateRow)
			f[3], f[5], f[6] = name, fmt.Sprint(op), fmt.Sprint(s.admin)
			out += strings.Join(f, " ") + "\n"
		}
		return transport.Result{Stdout: out}
	})
	h.conn.on("show stat", func(string) transport.Result {
		h.mu.Lock()
		h.stats++
		n, hook := h.stats, h.onStat
		h.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		cols := strings.Split(strings.TrimPrefix(statHead, "# "), ",")
		out := statHead + "\n"
		for _, name := range h.names() {
			f := strings.Split(statRow, ",")
			f[index(cols, "svname")], f[index(cols, "status")], f[index(cols, "scur")] = name, h.servers[name].status(), "0"
			out += strings.Join(f, ",") + "\n"
		}
		return transport.Result{Stdout: out}
	})
	h.conn.on("set server compilers/", func(cmd string) transport.Result {
		var name, state string
		fmt.Sscanf(cmd[strings.Index(cmd, "set server compilers/")+len("set server compilers/"):], "%s state %s", &name, &state)
		state = strings.TrimSuffix(state, "'")
		h.mu.Lock()
		defer h.mu.Unlock()
		s, ok := h.servers[name]
		if !ok {
			return transport.Result{Stdout: "No such server.\n"}
		}
		s.admin = map[string]int{"ready": 0, "drain": haproxy.AdmForcedDrain, "maint": haproxy.AdmForcedMaint}[state]
		return transport.Result{}
	})
	return h
}

func (s *fakeServer) status() string {
	switch {
	case s.admin&haproxy.AdmForcedMaint != 0:
		return "MAINT"
	case !s.up:
		return "DOWN"
	case s.admin&haproxy.AdmForcedDrain != 0:
		return "DRAIN"
	}
	return "UP"
}

func (h *fakeHAProxy) names() []string {
	var out []string
	for n := range h.servers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (h *fakeHAProxy) setUp(name string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers[name].up = up
}

// fixtureRows cuts a section's header line and its first server row.
func fixtureRows(t *testing.T, all, section, head string) (string, string) {
	t.Helper()
	_, rest, _ := strings.Cut(all, "@@troupe-status@@ "+section+"\n")
	body, _, _ := strings.Cut(rest, "@@troupe-status@@ end")
	var header string
	for _, l := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(l, head):
			header = l
		case header != "" && strings.Contains(l, "compile1"):
			return header, l
		}
	}
	t.Fatalf("section %s: no header or no compile1 row", section)
	return "", ""
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	panic("no column " + s)
}

// lbSite is compilers compile1..3 behind the given HAProxies.
func lbSite(t *testing.T, lbs ...*fakeHAProxy) *fakeSite {
	s := &fakeSite{hosts: map[string]*fakeConn{}, groups: map[string][]string{}}
	for i := 1; i <= 3; i++ {
		s.hosts[fmt.Sprintf("compile%d.lab.test", i)] = newFake(t)
	}
	for i, lb := range lbs {
		name := fmt.Sprintf("lb%d.lab.test", i+1)
		s.hosts[name] = lb.conn
		s.groups["loadbalancer"] = append(s.groups["loadbalancer"], name)
	}
	return s
}

const drainCompile2 = "set server compilers/compile2 state drain"

// The fault: compile3 DOWN, min_up 2, drain compile2: it must not
// be drained (the command never sent) and the step says why. With compile3
// UP the same step drains it: the control.
func TestLBServerCapacityRefused(t *testing.T) {
	lb := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": true, "compile3": false})
	s := lbSite(t, lb)
	drain := &LBServer{State: "drain", MinUp: "2", CapacityWait: "0s"}
	_, err := drain.Run(context.Background(), s.exec(t, "compile2.lab.test"))
	want := "draining compile2 would leave 1 of 3 compilers UP (compile3 DOWN), below min_ready 2, still after 0s (capacity_wait): compilers/compile2 left as it was"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if got := lb.conn.ranMatching("set server"); len(got) != 0 {
		t.Fatalf("sent with capacity short: %v", got)
	}
	if len(lb.conn.ranMatching("show stat")) != 1 {
		t.Errorf("pool read %d times", len(lb.conn.ranMatching("show stat")))
	}

	lb.setUp("compile3", true)
	res, err := drain.Run(context.Background(), s.exec(t, "compile2.lab.test"))
	if err != nil || !res.Changed || !strings.Contains(res.Msg, "would leave 2 of 3 compilers UP, not below min_ready 2") {
		t.Fatalf("%+v %v", res, err)
	}
	if got := lb.conn.ranMatching(drainCompile2); len(got) != 1 {
		t.Errorf("drain sent %d times", len(got))
	}
}

// First reading short (compile3 DOWN), the second OK (it came back): the
// step waits, then drains once.
func TestLBServerCapacityWaitsThenDrains(t *testing.T) {
	lb := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": true, "compile3": false})
	drained := -1 // drains sent before the second reading
	lb.onStat = func(n int) {
		if n == 2 {
			lb.setUp("compile3", true)
			drained = len(lb.conn.ranMatching(drainCompile2))
		}
	}
	s := lbSite(t, lb)
	drain := &LBServer{State: "drain", MinUp: "2", CapacityWait: "1m", poll: time.Millisecond}
	res, err := drain.Run(context.Background(), s.exec(t, "compile2.lab.test"))
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	if drained != 0 {
		t.Errorf("%d drains before the second reading (-1: no second reading)", drained)
	}
	if got := lb.conn.ranMatching(drainCompile2); len(got) != 1 {
		t.Errorf("drain sent %d times", len(got))
	}
	var waited []string
	for _, e := range s.events {
		if e.Kind == report.HostLine && strings.HasPrefix(e.Text, "waiting: ") {
			waited = append(waited, e.Text)
		}
	}
	if len(waited) != 1 || !strings.Contains(waited[0], "below min_ready 2") {
		t.Errorf("waiting lines: %q", waited)
	}
}

// Two HAProxies: compile3 UP in lb1 but DOWN in lb2 does not count, and
// neither HAProxy drains compile2; with compile3 UP in both, both do.
func TestLBServerCapacityEveryLB(t *testing.T) {
	lb1 := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": true, "compile3": true})
	lb2 := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": true, "compile3": false})
	s := lbSite(t, lb1, lb2)
	drain := &LBServer{State: "drain", MinUp: "2", CapacityWait: "0s"}
	_, err := drain.Run(context.Background(), s.exec(t, "compile2.lab.test"))
	if err == nil || !strings.Contains(err.Error(), "(compile3 DOWN on lb2.lab.test)") {
		t.Fatalf("%v", err)
	}
	if n := len(lb1.conn.ranMatching("set server")) + len(lb2.conn.ranMatching("set server")); n != 0 {
		t.Fatalf("%d set commands sent", n)
	}
	lb2.setUp("compile3", true)
	if _, err := drain.Run(context.Background(), s.exec(t, "compile2.lab.test")); err != nil {
		t.Fatal(err)
	}
	if len(lb1.conn.ranMatching(drainCompile2)) != 1 || len(lb2.conn.ranMatching(drainCompile2)) != 1 {
		t.Errorf("lb1 %v, lb2 %v", lb1.conn.ranMatching("set server"), lb2.conn.ranMatching("set server"))
	}
}

// A batch of two drains at once: 3 compilers UP, min_up 2. One may go,
// the other must then see it gone and stay. Without the backend's lock
// both would read 3 UP and both drain.
func TestLBServerCapacityBatch(t *testing.T) {
	lb := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": true, "compile3": true})
	// Each reading waits (bounded) for the other host's: with the lock
	// broken both read before either drains.
	second := make(chan struct{})
	var once sync.Once
	lb.onStat = func(n int) {
		if n >= 2 {
			once.Do(func() { close(second) })
			return
		}
		select {
		case <-second:
		case <-time.After(300 * time.Millisecond):
		}
	}
	s := lbSite(t, lb)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, host := range []string{"compile1.lab.test", "compile2.lab.test"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = (&LBServer{State: "drain", MinUp: "2", CapacityWait: "0s"}).Run(context.Background(), s.exec(t, host))
		}()
	}
	wg.Wait()
	if got := lb.conn.ranMatching("set server"); len(got) != 1 {
		t.Fatalf("%d drains: %v", len(got), got)
	}
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if !strings.Contains(err.Error(), "would leave 1 of 3 compilers UP (compile") || !strings.Contains(err.Error(), " DRAIN)") {
				t.Errorf("%v", err)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failed: %v", failed, errs)
	}
}

// A compiler no HAProxy has UP (in maintenance after a failed gate) may
// leave however few are UP: --resume can work on it.
func TestLBServerCapacityServerAlreadyOut(t *testing.T) {
	lb := newFakeHAProxy(t, map[string]bool{"compile1": true, "compile2": false, "compile3": false})
	s := lbSite(t, lb)
	res, err := (&LBServer{State: "drain", MinUp: "2", CapacityWait: "0s"}).Run(context.Background(), s.exec(t, "compile2.lab.test"))
	if err != nil || !strings.Contains(res.Msg, "takes nothing from the pool") {
		t.Fatalf("%+v %v", res, err)
	}
	if len(lb.conn.ranMatching(drainCompile2)) != 1 {
		t.Error("not drained")
	}
}

func TestLBServerMinUpValidate(t *testing.T) {
	for _, l := range []LBServer{{State: "drain", MinUp: "two"}, {State: "drain", MinUp: "-1"}, {State: "ready", MinUp: "1"}, {State: "drain", MinUp: "1", CapacityWait: "5 minutes"}} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v: no error", l)
		}
	}
	for _, l := range []LBServer{{State: "drain", MinUp: "1", CapacityWait: "5m"}, {State: "drain", MinUp: "{{ .vars.min_ready }}"}, {State: "maint", MinUp: "0"}} {
		if err := l.Validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}
