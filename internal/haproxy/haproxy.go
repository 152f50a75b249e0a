// Package haproxy reads the answers of HAProxy's runtime API (HAProxy
// management manual, doc/management.txt): `show servers state` and
// `show stat`. It only parses text; sending the commands over the admin
// socket is the caller's business (step's lb_server, status's probes).
package haproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// HAProxy's srv_admin_state bits (src/server.h): forced maintenance and
// forced drain are the two troupe sets; the others are inherited or come
// from the configuration.
const (
	AdmForcedMaint = 0x01
	AdmForcedDrain = 0x08
)

// ServerState is one server line of `show servers state`.
type ServerState struct {
	Backend, Server string
	// OpState is srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping.
	OpState, AdminState int
}

// Admin is the administrative state troupe sets: maint, drain or ready.
func (s ServerState) Admin() string {
	switch {
	case s.AdminState&AdmForcedMaint != 0:
		return "maint"
	case s.AdminState&AdmForcedDrain != 0:
		return "drain"
	}
	return "ready"
}

// ParseServersState reads the version-1 format: a version line, a "# "
// header naming the columns, then one line per server. An error message
// from HAProxy ("Can't find backend", "No such ...") is returned as the
// error.
func ParseServersState(out string) ([]ServerState, error) {
	var cols []string
	var servers []ServerState
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "#" {
			cols = f[1:]
			continue
		}
		if cols == nil || len(f) < len(cols) {
			if strings.HasPrefix(l, "Can't find") || strings.HasPrefix(l, "No such") {
				return nil, errors.New(strings.TrimSpace(l))
			}
			continue
		}
		v := map[string]string{}
		for i, c := range cols {
			v[c] = f[i]
		}
		op, err1 := strconv.Atoi(v["srv_op_state"])
		adm, err2 := strconv.Atoi(v["srv_admin_state"])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("show servers state: bad line %q", l)
		}
		servers = append(servers, ServerState{Backend: v["be_name"], Server: v["srv_name"], OpState: op, AdminState: adm})
	}
	return servers, nil
}

// ErrNoServer: the backend has no server of that name.
var ErrNoServer = errors.New("no server")

// FindServerState returns server's line of `show servers state` output.
func FindServerState(out, backend, server string) (ServerState, error) {
	all, err := ParseServersState(out)
	if err != nil {
		return ServerState{}, err
	}
	for _, s := range all {
		if s.Backend == backend && s.Server == server {
			return s, nil
		}
	}
	return ServerState{}, fmt.Errorf("%w %s in backend %s (show servers state lists %d servers)", ErrNoServer, server, backend, len(all))
}

// Stat is one server row of `show stat` (CSV).
type Stat struct {
	Backend, Server string
	Status          string // UP, DOWN, DRAIN, MAINT, "no check", "UP 1/2" ...
	Scur            int    // current sessions
	CheckStatus     string // last health check: L7OK, L4CON, L7STS ...
}

// ParseStat reads the CSV of `show stat`: a "# " header naming the columns,
// then one line per frontend, server and backend. Only server rows (svname
// neither FRONTEND nor BACKEND) are returned.
func ParseStat(out string) []Stat {
	var cols []string
	var rows []Stat
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "# ") {
			cols = strings.Split(strings.TrimPrefix(l, "# "), ",")
			continue
		}
		f := strings.Split(l, ",")
		if cols == nil || len(f) < len(cols)-1 {
			continue
		}
		v := map[string]string{}
		for i, c := range cols {
			if i < len(f) {
				v[c] = f[i]
			}
		}
		if v["svname"] == "FRONTEND" || v["svname"] == "BACKEND" {
			continue
		}
		n, _ := strconv.Atoi(v["scur"])
		rows = append(rows, Stat{Backend: v["pxname"], Server: v["svname"], Status: v["status"], Scur: n, CheckStatus: v["check_status"]})
	}
	return rows
}

// FindStat returns server's row of `show stat` output.
func FindStat(out, backend, server string) (Stat, error) {
	for _, s := range ParseStat(out) {
		if s.Backend == backend && s.Server == server {
			return s, nil
		}
	}
	return Stat{}, fmt.Errorf("no server %s in backend %s (show stat)", server, backend)
}
