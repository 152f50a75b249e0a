package step

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/haproxy"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
)

// LBFrontend holds or opens a frontend in every HAProxy of the site, so a
// short outage behind every compiler at once (PuppetDB restarting) is a
// pause to the agents instead of a failed run.
//
// held sets the frontend's maxconn to 0 through the runtime API (`set
// maxconn frontend`, HAProxy management manual): HAProxy stops accepting,
// new agent connections wait in the kernel's listen backlog, and the agents
// wait with them, up to their http_connect_timeout (120 s by default, which
// also bounds the TLS handshake). The step then waits until the frontend's
// sessions in flight have ended. A watchdog started on each load balancer
// before the hold opens the frontend again after limit whatever becomes of
// the run (killed, disconnected): a hold never outlives its limit.
//
// open restores the maxconn the frontend had and stops the watchdog; it
// says so when the watchdog had already opened it (the limit was reached:
// agents that came then may have failed).
type LBFrontend struct {
	State    string `yaml:"state"`    // held | open
	Frontend string `yaml:"frontend"` // default puppet
	LB       string `yaml:"lb"`       // inventory group of the HAProxy hosts; default loadbalancer
	Socket   string `yaml:"socket"`   // default /run/haproxy/admin.sock
	// Limit is the longest a hold lasts: below the agents' connect timeout.
	Limit string `yaml:"limit"` // default 100s
	// Timeout is how long held waits for the sessions in flight to end;
	// at the timeout the frontend is opened again and the step fails.
	Timeout string `yaml:"timeout"` // default 30s
}

// holdDir keeps, per held frontend, its maxconn and the watchdog's pid.
const holdDir = "/run/troupe"

func (l *LBFrontend) Title() string {
	return "Frontend " + dflt(l.Frontend, "puppet") + " " + l.State + " in HAProxy"
}

func (l *LBFrontend) Validate() error {
	switch l.State {
	case "held", "open":
	default:
		return fmt.Errorf("state %q: want held or open", l.State)
	}
	for _, d := range []string{l.Limit, l.Timeout} {
		if err := checkDuration(d); err != nil {
			return err
		}
	}
	if strings.ContainsAny(l.Frontend, " /'\"\\$`") {
		return fmt.Errorf("frontend %q: not a frontend name", l.Frontend)
	}
	return nil
}

// Peers are the HAProxy hosts (step.PeerUser).
func (l *LBFrontend) Peers(sc Scope) ([]string, error) { return lbHosts(sc, l.LB) }

func (l *LBFrontend) Run(ctx context.Context, x *Exec) (Result, error) {
	frontend, err := x.Render(dflt(l.Frontend, "puppet"))
	if err != nil {
		return Result{}, err
	}
	lbs, err := l.Peers(x.Scope())
	if err != nil {
		return Result{}, err
	}
	limit, err := x.Duration(l.Limit, 100*time.Second)
	if err != nil {
		return Result{}, err
	}
	timeout, err := x.Duration(l.Timeout, 30*time.Second)
	if err != nil {
		return Result{}, err
	}
	apis := make([]haproxyAPI, len(lbs))
	for i, name := range lbs {
		lb, err := x.Peer(ctx, name)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		apis[i] = haproxyAPI{x: lb, socket: dflt(l.Socket, "/run/haproxy/admin.sock")}
	}
	if l.State == "open" {
		return openFrontend(ctx, apis, lbs, frontend)
	}
	return holdFrontend(ctx, x, apis, lbs, frontend, limit, timeout)
}

func holdFrontend(ctx context.Context, x *Exec, apis []haproxyAPI, lbs []string, frontend string, limit, timeout time.Duration) (Result, error) {
	var msgs []string
	changed := false
	start := time.Now()
	for i, api := range apis {
		f, err := api.frontend(ctx, frontend)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", lbs[i], err)
		}
		if x.Noop {
			msgs = append(msgs, fmt.Sprintf("%s: would hold (maxconn %d → 0, for at most %s)", lbs[i], f.Slim, limit))
			continue
		}
		res, err := api.x.MustChange(ctx, holdScript(frontend, api.socket, f.Slim, limit), "")
		if err != nil {
			openFrontend(context.WithoutCancel(ctx), apis[:i+1], lbs[:i+1], frontend)
			return Result{}, fmt.Errorf("%s: hold: %w", lbs[i], err)
		}
		if strings.Contains(res.Stdout, "HELD") {
			msgs = append(msgs, lbs[i]+": already held")
			continue
		}
		changed = true
		msgs = append(msgs, fmt.Sprintf("%s: held (maxconn %d → 0, watchdog opens it after %s)", lbs[i], f.Slim, limit))
	}
	if x.Noop {
		return Result{Changed: true, Msg: strings.Join(msgs, "; ")}, nil
	}
	// The sessions in flight end; the new ones wait in the backlog.
	for {
		left := 0
		for i, api := range apis {
			f, err := api.frontend(ctx, frontend)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", lbs[i], err)
			}
			left += f.Scur
		}
		if left == 0 {
			break
		}
		if time.Since(start) > timeout {
			_, err := openFrontend(context.WithoutCancel(ctx), apis, lbs, frontend)
			return Result{}, fmt.Errorf("%d sessions still open after %s; the frontend is open again (%v)", left, timeout, err)
		}
		x.Emit(report.Event{Kind: report.HostLine, Stream: "stdout", Text: fmt.Sprintf("%s: %d sessions in flight", frontend, left)})
		select {
		case <-ctx.Done():
			openFrontend(context.WithoutCancel(ctx), apis, lbs, frontend)
			return Result{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	msgs = append(msgs, fmt.Sprintf("no session in flight after %s", time.Since(start).Round(100*time.Millisecond)))
	return Result{Changed: changed, Msg: strings.Join(msgs, "; ")}, nil
}

// holdScript starts the watchdog, then holds: a hold never exists without
// the watchdog that ends it. The state file names the maxconn to restore
// and the watchdog's process group (setsid: it outlives this session).
func holdScript(frontend, socket string, maxconn int, limit time.Duration) string {
	file := holdDir + "/hold-" + frontend
	api := func(cmd string) string {
		return "echo " + render.ShellQuote(cmd) + " | socat stdio " + render.ShellQuote("unix-connect:"+socket)
	}
	restore := api(fmt.Sprintf("set maxconn frontend %s %d", frontend, maxconn))
	watchdog := fmt.Sprintf("sleep %d; %s >/dev/null; date > %s.expired; rm -f %s",
		int(limit.Seconds()), restore, file, file)
	return strings.Join([]string{
		"set -e",
		"mkdir -p -m 0700 " + holdDir,
		"if [ -e " + file + " ]; then echo HELD; exit 0; fi",
		"rm -f " + file + ".expired",
		"setsid sh -c " + render.ShellQuote(watchdog) + " </dev/null >/dev/null 2>&1 &",
		"echo " + strconv.Itoa(maxconn) + " $! > " + file,
		"out=$(" + api("set maxconn frontend "+frontend+" 0") + ")",
		`[ -z "$out" ] || { echo "$out" >&2; exit 1; }`,
	}, "\n")
}

// openFrontend restores each held frontend's maxconn and stops its
// watchdog.
func openFrontend(ctx context.Context, apis []haproxyAPI, lbs []string, frontend string) (Result, error) {
	file := holdDir + "/hold-" + frontend
	var msgs []string
	changed := false
	for i, api := range apis {
		sh := strings.Join([]string{
			"if [ ! -e " + file + " ]; then",
			"  if [ -e " + file + ".expired ]; then echo EXPIRED $(cat " + file + ".expired); rm -f " + file + ".expired; else echo OPEN; fi; exit 0",
			"fi",
			"read maxconn pid < " + file,
			"kill -- -$pid 2>/dev/null || true",
			"out=$(echo \"set maxconn frontend " + frontend + " $maxconn\" | socat stdio " + render.ShellQuote("unix-connect:"+api.socket) + ")",
			`[ -z "$out" ] || { echo "$out" >&2; exit 1; }`,
			"rm -f " + file,
			"echo OPENED $maxconn",
		}, "\n")
		if api.x.Noop {
			msgs = append(msgs, lbs[i]+": would open")
			continue
		}
		res, err := api.x.MustChange(ctx, sh, "")
		if err != nil {
			return Result{}, fmt.Errorf("%s: open: %w", lbs[i], err)
		}
		out := strings.TrimSpace(res.Stdout)
		switch {
		case strings.HasPrefix(out, "OPENED"):
			changed = true
			msgs = append(msgs, lbs[i]+": open (maxconn "+strings.TrimPrefix(out, "OPENED ")+")")
		case strings.HasPrefix(out, "EXPIRED"):
			msgs = append(msgs, lbs[i]+": the hold had reached its limit; the watchdog opened it at "+strings.TrimPrefix(out, "EXPIRED "))
		default:
			f, err := api.frontend(ctx, frontend)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", lbs[i], err)
			}
			if f.Slim == 0 {
				return Result{}, fmt.Errorf("%s: frontend %s has maxconn 0 but troupe holds nothing (%s): set its maxconn by hand", lbs[i], frontend, file)
			}
			msgs = append(msgs, lbs[i]+": already open")
		}
	}
	return Result{Changed: changed, Msg: strings.Join(msgs, "; ")}, nil
}

// frontend reads the frontend's row of `show stat`.
func (a haproxyAPI) frontend(ctx context.Context, name string) (haproxy.Frontend, error) {
	out, err := a.command(ctx, "show stat", false)
	if err != nil {
		return haproxy.Frontend{}, err
	}
	return haproxy.FindFrontend(out, name)
}
