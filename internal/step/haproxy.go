package step

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/haproxy"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
)

// LBServer sets this host's state in every HAProxy of the site through the
// runtime API (HAProxy management manual, doc/management.txt, `set server`):
// `set server BACKEND/SERVER state
// ready|drain|maint` over the admin socket, after reading `show servers
// state` so an unchanged state is no change. With wait (the default), drain
// waits until the server's current sessions reach 0 and ready until its
// health check says UP. The step targets the servers; the LB hosts are
// reached through the inventory group `lb`.
type LBServer struct {
	State   string `yaml:"state"`   // ready | drain | maint
	Backend string `yaml:"backend"` // default compilers
	Server  string `yaml:"server"`  // default: the host's short name
	LB      string `yaml:"lb"`      // inventory group of the HAProxy hosts; default loadbalancer
	Socket  string `yaml:"socket"`  // default /run/haproxy/admin.sock
	Wait    *bool  `yaml:"wait"`    // default true
	Timeout string `yaml:"timeout"` // default 10m: a catalog compile may take that long (agent http_read_timeout)
	// OnTimeout is what a drain does when sessions remain at the timeout:
	// fail (the default: the run stops, the server stays drained) or cut
	// (`shutdown sessions server`: the agents on those sessions fail their run).
	OnTimeout string `yaml:"on_timeout"`
	// Absent is what a server missing from the backend means to drain or
	// maint: fail (the default: a wrong name is an error) or ok (it is out
	// of the pool already, as on a rerun of remove-compiler).
	Absent string `yaml:"absent"`
	// MinUp guards a drain or maint: before it, the backend's state is read
	// in every HAProxy (`show stat`), and the server leaves only when at
	// least MinUp other servers are UP in every HAProxy; until then it
	// waits, up to CapacityWait (default 5m), and then fails with the
	// server left as it was. A server no HAProxy has UP leaves freely: it
	// takes nothing from the pool. Empty: no guard.
	MinUp        string `yaml:"min_up"`
	CapacityWait string `yaml:"capacity_wait"`

	poll time.Duration // between capacity readings; tests shorten it
}

func (l *LBServer) Title() string { return "Set server state " + l.State + " in HAProxy" }

func (l *LBServer) Validate() error {
	if err := checkLBState(l.State); err != nil && !strings.Contains(l.State, "{{") {
		return err
	}
	if err := checkDuration(l.Timeout); err != nil {
		return err
	}
	if l.MinUp != "" && !strings.Contains(l.MinUp, "{{") {
		if n, err := strconv.Atoi(l.MinUp); err != nil || n < 0 {
			return fmt.Errorf("min_up %q: want a whole number, 0 or more", l.MinUp)
		}
		if l.State == "ready" {
			return errors.New("min_up guards a drain or maint, not ready")
		}
	}
	if err := checkDuration(l.CapacityWait); err != nil {
		return fmt.Errorf("capacity_wait: %w", err)
	}
	switch l.OnTimeout {
	case "", "fail", "cut":
	default:
		if !strings.Contains(l.OnTimeout, "{{") {
			return fmt.Errorf("on_timeout %q: want fail or cut", l.OnTimeout)
		}
	}
	switch l.Absent {
	case "", "fail", "ok":
	default:
		if !strings.Contains(l.Absent, "{{") {
			return fmt.Errorf("absent %q: want fail or ok", l.Absent)
		}
	}
	return nil
}

// Peers are the HAProxy hosts (step.PeerUser).
func (l *LBServer) Peers(sc Scope) ([]string, error) { return lbHosts(sc, l.LB) }

func checkLBState(s string) error {
	switch s {
	case "ready", "drain", "maint":
		return nil
	}
	return fmt.Errorf("state %q: want ready, drain or maint", s)
}

func (l *LBServer) Run(ctx context.Context, x *Exec) (Result, error) {
	state, err := x.Render(l.State)
	if err != nil {
		return Result{}, err
	}
	if err := checkLBState(state); err != nil {
		return Result{}, err
	}
	backend, err := x.Render(dflt(l.Backend, "compilers"))
	if err != nil {
		return Result{}, err
	}
	server, err := x.Render(dflt(l.Server, "{{ .host.short }}"))
	if err != nil {
		return Result{}, err
	}
	names, err := l.Peers(x.Scope())
	if err != nil {
		return Result{}, err
	}
	timeout, err := x.Duration(l.Timeout, 10*time.Minute)
	if err != nil {
		return Result{}, err
	}
	cut, err := x.Render(l.OnTimeout)
	if err != nil {
		return Result{}, err
	}
	absent, err := x.Render(l.Absent)
	if err != nil {
		return Result{}, err
	}
	g, err := l.guard(x, state)
	if err != nil {
		return Result{}, err
	}
	lbs := make([]haproxyAPI, len(names))
	for i, name := range names {
		lb, err := x.Peer(ctx, name)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		lbs[i] = haproxyAPI{x: lb, name: name, socket: dflt(l.Socket, "/run/haproxy/admin.sock")}
	}
	set, msgs, changed, err := l.set(ctx, x, lbs, g, backend, server, state, absent == "ok" && state != "ready")
	if err != nil {
		return Result{}, err
	}
	// Every HAProxy is set before any is waited on: a drain runs in all of
	// them at once.
	if (l.Wait == nil || *l.Wait) && !x.Noop {
		for i, api := range lbs {
			if !set[i] {
				continue
			}
			w, err := api.settle(ctx, backend, server, state, timeout, cut == "cut")
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", api.name, err)
			}
			msgs[i] += w
		}
	}
	if g != nil && g.said != "" {
		msgs = append([]string{g.said}, msgs...)
	}
	return Result{Changed: changed, Msg: backend + "/" + server + " " + strings.Join(msgs, "; ")}, nil
}

// set reads the server's state in every HAProxy and sets it where it
// differs; with a capacity guard, only once the pool can spare the server,
// and under the backend's lock so that no other host of this run (a batch
// of several) drains between the reading and the setting. set[i] says
// whether lbs[i] has the server (false: absent, and absent is ok).
func (l *LBServer) set(ctx context.Context, x *Exec, lbs []haproxyAPI, g *capacityGuard, backend, server, state string, absentOK bool) (set []bool, msgs []string, changed bool, err error) {
	if g != nil {
		unlock := lockBackend(backend, lbs)
		defer func() { unlock() }()
		for {
			leaving, rerr := readPool(ctx, lbs, backend, server, state, g.min)
			if rerr != nil {
				return nil, nil, false, rerr
			}
			if leaving.OK() {
				g.said = leaving.String()
				break
			}
			if x.Noop {
				return nil, nil, false, fmt.Errorf("%s (under --noop not waited for)", leaving)
			}
			if time.Now().After(g.deadline) {
				return nil, nil, false, fmt.Errorf("%s, still after %s (capacity_wait): %s/%s left as it was", leaving, g.wait, backend, server)
			}
			x.Emit(report.Event{Kind: report.HostLine, Stream: "stdout", Text: "waiting: " + leaving.String()})
			unlock() // others may drain, or join, meanwhile
			select {
			case <-ctx.Done():
				return nil, nil, false, ctx.Err()
			case <-time.After(g.poll):
			}
			unlock = lockBackend(backend, lbs)
		}
	}
	set = make([]bool, len(lbs))
	msgs = make([]string, len(lbs))
	for i, api := range lbs {
		st, err := api.state(ctx, backend, server)
		if errors.Is(err, haproxy.ErrNoServer) && absentOK {
			msgs[i] = api.name + ": not in the backend"
			continue
		}
		if err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", api.name, err)
		}
		set[i] = true
		did := "already " + state
		if st.Admin() != state {
			if _, err := api.command(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state), true); err != nil {
				return nil, nil, false, fmt.Errorf("%s: %w", api.name, err)
			}
			changed, did = true, st.Admin()+" → "+state
		}
		msgs[i] = api.name + ": " + did
	}
	return set, msgs, changed, nil
}

// capacityGuard is min_up in force for one run of the action.
type capacityGuard struct {
	min      int
	wait     time.Duration
	deadline time.Time
	poll     time.Duration
	said     string // the reading that let the server go, for the report
}

// guard is the capacity guard of a drain or maint with min_up; nil without.
func (l *LBServer) guard(x *Exec, state string) (*capacityGuard, error) {
	if l.MinUp == "" || state == "ready" {
		return nil, nil
	}
	s, err := x.Render(l.MinUp)
	if err != nil {
		return nil, err
	}
	min, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || min < 0 {
		return nil, fmt.Errorf("min_up %q: want a whole number, 0 or more", s)
	}
	wait, err := x.Duration(l.CapacityWait, 5*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("capacity_wait: %w", err)
	}
	return &capacityGuard{min: min, wait: wait, deadline: time.Now().Add(wait), poll: dfltDur(l.poll, 2*time.Second)}, nil
}

// readPool reads `show stat` of every HAProxy and decides whether server
// may leave.
func readPool(ctx context.Context, lbs []haproxyAPI, backend, server, state string, min int) (haproxy.Leaving, error) {
	answers := make([]haproxy.LBStat, len(lbs))
	for i, api := range lbs {
		out, err := api.command(ctx, "show stat", false)
		if err != nil {
			return haproxy.Leaving{}, fmt.Errorf("%s: %w", api.name, err)
		}
		answers[i] = haproxy.LBStat{LB: api.name, Stat: out}
	}
	return haproxy.NewPool(backend, answers).Leave(server, state, min), nil
}

// backendLocks: one per backend and set of HAProxies, held from the
// capacity reading to the last `set server`. Hosts of one batch run this
// action at once; without it two could each see enough servers UP and
// both leave. One troupe process runs one plan, and the run's lock on each
// LB keeps other troupe runs out.
var backendLocks sync.Map // key → *sync.Mutex

func lockBackend(backend string, lbs []haproxyAPI) (unlock func()) {
	key := backend
	for _, api := range lbs {
		key += " " + api.name
	}
	m, _ := backendLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	var once sync.Once
	return func() { once.Do(mu.Unlock) }
}

func dfltDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// haproxyAPI speaks to one HAProxy's admin socket with socat.
type haproxyAPI struct {
	x      *Exec
	name   string // the LB host, for messages
	socket string
}

// command sends one runtime-API command. Set commands answer with nothing
// on success and a message on error.
func (a haproxyAPI) command(ctx context.Context, cmd string, change bool) (string, error) {
	sh := "echo " + render.ShellQuote(cmd) + " | socat stdio " + render.ShellQuote("unix-connect:"+a.socket)
	var out string
	if change {
		res, err := a.x.MustChange(ctx, sh, "")
		if err != nil {
			return "", err
		}
		if msg := strings.TrimSpace(res.Stdout); msg != "" && !a.x.Noop {
			return "", fmt.Errorf("%s: %s", cmd, msg)
		}
		return "", nil
	}
	res, err := a.x.MustProbe(ctx, sh)
	if err != nil {
		return "", err
	}
	out = res.Stdout
	return out, nil
}

// state reads one server's line of `show servers state BACKEND`.
func (a haproxyAPI) state(ctx context.Context, backend, server string) (haproxy.ServerState, error) {
	out, err := a.command(ctx, "show servers state "+backend, false)
	if err != nil {
		return haproxy.ServerState{}, err
	}
	return haproxy.FindServerState(out, backend, server)
}

// sessions reads the server's current sessions (scur) and status from `show stat`.
func (a haproxyAPI) sessions(ctx context.Context, backend, server string) (int, string, error) {
	out, err := a.command(ctx, "show stat", false)
	if err != nil {
		return 0, "", err
	}
	st, err := haproxy.FindStat(out, backend, server)
	return st.Scur, st.Status, err
}

// settle waits until the new state took effect: no sessions left after a
// drain, health check UP after ready.
func (a haproxyAPI) settle(ctx context.Context, backend, server, state string, timeout time.Duration, cut bool) (string, error) {
	if state == "maint" {
		return "", nil
	}
	start, deadline := time.Now(), time.Now().Add(timeout)
	for {
		scur, status, err := a.sessions(ctx, backend, server)
		if err != nil {
			return "", err
		}
		var seen string
		switch state {
		case "drain":
			if scur == 0 {
				return fmt.Sprintf(", 0 sessions after %s", time.Since(start).Round(time.Second)), nil
			}
			seen = fmt.Sprintf("%d sessions left", scur)
		case "ready":
			if status == "UP" {
				return fmt.Sprintf(", UP after %s", time.Since(start).Round(time.Second)), nil
			}
			seen = "status " + status
		}
		if time.Now().After(deadline) {
			if state == "drain" && cut {
				if _, err := a.command(ctx, "shutdown sessions server "+backend+"/"+server, true); err != nil {
					return "", err
				}
				return fmt.Sprintf(", %d sessions cut after %s (on_timeout: cut)", scur, timeout), nil
			}
			if state == "drain" {
				seen += "; the server stays drained (on_timeout: cut would end the sessions)"
			}
			return "", fmt.Errorf("%s/%s not settled after %s: %s", backend, server, timeout, seen)
		}
		a.x.Emit(report.Event{Kind: report.HostLine, Stream: "stdout", Text: backend + "/" + server + ": " + seen})
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func dflt(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
