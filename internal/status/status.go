// Package status reads the state of a Puppet site built by troupe: one SSH
// connection and one probe script per host, all hosts in parallel, nothing
// written and no lock taken. The script's answer is parsed into typed rows
// (Host), then site-wide rules (HAProxy's view of each compiler, code drift
// between servers and against the control repository, certificate horizons)
// judge each row ok, warn or bad.
package status

import (
	"encoding/json"
	"time"
)

// Level is how healthy a cell, a row or the site is.
type Level int

const (
	OK   Level = iota
	Warn       // worth a look; the exit code stays 0
	Bad        // unhealthy: the exit code is 1
)

func (l Level) String() string {
	switch l {
	case Warn:
		return "warn"
	case Bad:
		return "bad"
	}
	return "ok"
}

func (l Level) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

// Site is one reading of the whole site.
type Site struct {
	Time     time.Time `json:"time"`
	WallMS   int64     `json:"wall_ms"`
	Level    Level     `json:"level"`
	Healthy  bool      `json:"healthy"` // Level != bad: exit code 0
	Horizon  int       `json:"horizon_days"`
	Control  *Control  `json:"control,omitempty"`
	Hosts    []*Host   `json:"hosts"`
	Problems []Problem `json:"problems"` // bad first, then warnings
}

// Control is the control repository's branches, read from one compiler.
type Control struct {
	Remote   string            `json:"remote"`   // as in r10k.yaml, credentials masked
	From     string            `json:"from"`     // the compiler that ran git ls-remote
	Branches map[string]string `json:"branches"` // environment → commit
	Error    string            `json:"error,omitempty"`
}

// Problem is one reason a row is not ok, listed under the table.
type Problem struct {
	Host  string `json:"host"`
	Level Level  `json:"level"`
	What  string `json:"what"` // the column: host, packages, services, status, haproxy, jruby, cert, ca, code, puppetdb
	Text  string `json:"text"`
}

// Host is one row.
type Host struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	Level   Level    `json:"level"`
	// Error is why the host could not be read at all: unreachable, refused
	// login, timeout. The probes' own failures are in their fields.
	Error    string         `json:"error,omitempty"`
	Packages []Package      `json:"packages"`
	Services []ServiceState `json:"services"`
	Server   *Server        `json:"server,omitempty"`     // CA and compilers
	HAProxy  []LBView       `json:"haproxy,omitempty"`    // compilers (and servers in any HAProxy backend)
	Pool     *Pool          `json:"pool,omitempty"`       // load balancers
	Cert     *Cert          `json:"cert,omitempty"`       // the host's own certificate
	CA       *CA            `json:"ca,omitempty"`         // the CA host
	Code     *Code          `json:"code,omitempty"`       // CA and compilers
	PuppetDB *PuppetDB      `json:"puppetdb,omitempty"`   // PuppetDB host
	Replica  *Replica       `json:"ca_replica,omitempty"` // the CA and the standby CA, with a standby
	Elapsed  int64          `json:"elapsed_ms"`

	spec spec
	secs map[string]section
}

// Package is an installed package (Version "" when it is missing).
type Package struct {
	Role    string `json:"role"` // server, agent, db
	Name    string `json:"name"`
	Version string `json:"version"`
	Level   Level  `json:"level"`
}

// ServiceState is a unit's `systemctl is-active` answer, or a Puppet Server
// service's state in /status/v1/services.
type ServiceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Level Level  `json:"level"`
}

// Server is what a Puppet Server says about itself on 127.0.0.1:8140.
type Server struct {
	Simple      string         `json:"simple"`             // /status/v1/simple: running, starting, error ...
	NotRunning  []ServiceState `json:"critical,omitempty"` // /status/v1/services?level=critical: the services not running
	JRuby       *JRuby         `json:"jruby,omitempty"`
	JRubyError  string         `json:"jruby_error,omitempty"`
	Error       string         `json:"error,omitempty"` // why /status/v1/simple did not answer
	Level       Level          `json:"level"`
	JRubyLevel  Level          `json:"jruby_level"`
	criticalErr string
}

// JRuby is the JRuby pool: free and total instances.
type JRuby struct {
	Free  int `json:"free"`
	Total int `json:"total"`
}

// LBView is one HAProxy's view of this server.
type LBView struct {
	LB       string `json:"lb"`
	Backend  string `json:"backend,omitempty"`
	State    string `json:"state"`           // show stat status: UP, DOWN, DRAIN, MAINT, NOLB ...
	Admin    string `json:"admin,omitempty"` // ready, drain, maint (show servers state)
	Sessions int    `json:"sessions"`        // current sessions (scur)
	Check    string `json:"check,omitempty"` // last health check (check_status)
	Error    string `json:"error,omitempty"`
	Level    Level  `json:"level"`
}

// Pool is a load balancer's servers.
type Pool struct {
	Servers []PoolServer `json:"servers"`
	Error   string       `json:"error,omitempty"`
	Level   Level        `json:"level"`
	// With two load balancers: the virtual IP (lb_vip), whether this one
	// holds it, and why that could not be read.
	VIP      string `json:"vip,omitempty"`
	HoldsVIP bool   `json:"holds_vip,omitempty"`
	VIPError string `json:"vip_error,omitempty"`
}

// PoolServer is one server row of an HAProxy.
type PoolServer struct {
	Backend  string `json:"backend"`
	Server   string `json:"server"`
	State    string `json:"state"`
	Admin    string `json:"admin"`
	Sessions int    `json:"sessions"`
	Check    string `json:"check,omitempty"`
}

// Cert is a certificate's expiry and names.
type Cert struct {
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	SANs     []string  `json:"sans,omitempty"`
	Serial   string    `json:"serial,omitempty"` // upper-case hex
	Issuer   string    `json:"issuer,omitempty"` // the issuing CA's CN
	// Revoked: the CA's CRL lists this serial of this issuer.
	Revoked bool   `json:"revoked,omitempty"`
	Error   string `json:"error,omitempty"`
	Level   Level  `json:"level"`
}

// CA is the CA's certificates and CRLs (a bundle may chain an intermediate
// to a root: the earliest date counts).
type CA struct {
	Certs []Expiry `json:"certs"`
	CRLs  []Expiry `json:"crls"`
	// Revoked is how many serials the CRLs list (-1: not read).
	Revoked int    `json:"revoked"`
	Error   string `json:"error,omitempty"`
	Level   Level  `json:"level"`

	revoked map[string]map[string]bool // issuer CN → serial (upper-case hex) → listed
}

// Expiry is one certificate's not-after or one CRL's next update.
type Expiry struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	DaysLeft int       `json:"days_left"`
}

// Replica is the CA directory's copy on the standby CA (group ca_standby):
// on the CA, the push's state (roles/files/ca-replica-push.sh); on the
// standby, the snapshot it holds (roles/files/ca-replica-receive.sh).
type Replica struct {
	Serial string `json:"serial"`                  // the CA's serial now; the snapshot's
	Pushed string `json:"pushed_serial,omitempty"` // CA: the serial the last push carried
	// CA: when the last push ended; standby: when its snapshot became current.
	Time time.Time `json:"time,omitzero"`
	// CA: the last push carried what the CA holds now; else Lag is how
	// long the CA's newest change has waited, in seconds.
	InSync   bool   `json:"in_sync"`
	Lag      int64  `json:"lag_seconds"`
	Watching string `json:"watching,omitempty"`    // CA: the path unit's state (active)
	Result   string `json:"last_result,omitempty"` // CA: the last push's result (success)
	Server   string `json:"server,omitempty"`      // standby: its puppetserver (never active: not a second CA)
	// State is what plan ca-failover left in /etc/troupe/ca-state: "fenced"
	// on an old CA, "active" on a promoted standby, "standby" once the
	// inventory was swapped and bootstrap run; empty before any failover.
	State string `json:"ca_state,omitempty"`
	Error string `json:"error,omitempty"`
	Level Level  `json:"level"`
}

// Code is the deployed control repository on a server.
type Code struct {
	Envs  []Env  `json:"environments"`
	Error string `json:"error,omitempty"`
	Level Level  `json:"level"`
}

// Env is one deployed environment. Drift says how it differs: "" (same as
// the other compilers and the control repository), "behind" (not the
// branch's commit), "differs" (not the commit the other compilers have),
// "missing" (a branch not deployed here), "stale" (no such branch).
type Env struct {
	Name   string `json:"name"`
	Commit string `json:"commit"`
	// Deployed is when r10k finished deploying it (.r10k-deploy.json's
	// finished_at); zero when it does not say.
	Deployed time.Time `json:"deployed,omitzero"`
	Drift    string    `json:"drift,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// PuppetDB is PuppetDB's own status on 127.0.0.1:8080.
type PuppetDB struct {
	State       string    `json:"state"`
	QueueDepth  *int      `json:"queue_depth"`
	Nodes       int       `json:"nodes"`
	LastCommand time.Time `json:"last_command"` // newest facts/catalog/report timestamp of any node
	Error       string    `json:"error,omitempty"`
	Level       Level     `json:"level"`
}
