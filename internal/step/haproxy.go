package step

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
}

func (l *LBServer) Title() string { return "Set server state " + l.State + " in HAProxy" }

func (l *LBServer) Validate() error {
	if err := checkLBState(l.State); err != nil && !strings.Contains(l.State, "{{") {
		return err
	}
	if err := checkDuration(l.Timeout); err != nil {
		return err
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
	lbs, err := l.Peers(x.Scope())
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
	absentOK := absent == "ok" && state != "ready"
	var changed bool
	var msgs []string
	for _, name := range lbs {
		lb, err := x.Peer(ctx, name)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		api := haproxyAPI{x: lb, socket: dflt(l.Socket, "/run/haproxy/admin.sock")}
		st, err := api.state(ctx, backend, server)
		if errors.Is(err, haproxy.ErrNoServer) && absentOK {
			msgs = append(msgs, name+": not in the backend")
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		did := "already " + state
		if st.Admin() != state {
			if _, err := api.command(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, state), true); err != nil {
				return Result{}, fmt.Errorf("%s: %w", name, err)
			}
			changed, did = true, st.Admin()+" → "+state
		}
		if (l.Wait == nil || *l.Wait) && !x.Noop {
			w, err := api.settle(ctx, backend, server, state, timeout, cut == "cut")
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", name, err)
			}
			did += w
		}
		msgs = append(msgs, name+": "+did)
	}
	return Result{Changed: changed, Msg: backend + "/" + server + " " + strings.Join(msgs, "; ")}, nil
}

// haproxyAPI speaks to one HAProxy's admin socket with socat.
type haproxyAPI struct {
	x      *Exec
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
