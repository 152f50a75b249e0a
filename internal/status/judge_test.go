package status

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/troupe/troupe/internal/golden"
	"github.com/troupe/troupe/internal/haproxy"
)

// now is pinned for the golden files: the healthy fixtures were captured
// on the lab on 2026-12-02.
var now = time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC)

// edits rewrite hosts' captured answers before they are read: how the
// failure scenarios are made from the healthy lab.
type edits map[string]func(t *testing.T, out string) string

// labSite is the healthy lab (fixtures/status/*-healthy*.txt, captured from
// `troupe lab up` after `troupe run bootstrap`), with edits applied to the
// answers before they are read: how the failure scenarios are made.
func labSite(t *testing.T, e edits) *Site {
	t.Helper()
	type row struct {
		fixture, name string
		heads         bool
		roles         []string
	}
	rows := []row{
		{"ca-healthy", "ca.lab.test", false, []string{RoleCA}},
		{"compiler-healthy-1", "compile1.lab.test", true, []string{RoleCompiler}},
		{"compiler-healthy-2", "compile2.lab.test", false, []string{RoleCompiler}},
		{"lb-healthy", "lb.lab.test", false, []string{RoleLB}},
		{"puppetdb-healthy", "puppetdb.lab.test", false, []string{RolePuppetDB, RoleDatabase}},
		{"agent-healthy", "agent1.lab.test", false, []string{RoleAgent}},
	}
	var hosts []*Host
	for _, r := range rows {
		out := fixture(t, r.fixture)
		if ed := e[r.name]; ed != nil {
			out = ed(t, out)
		}
		hosts = append(hosts, fromText(t, out, r.name, r.heads, r.roles...))
	}
	site := Judge(hosts, now, DefaultHorizon)
	site.WallMS = 1234
	return site
}

func host(t *testing.T, s *Site, name string) *Host {
	t.Helper()
	for _, h := range s.Hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no host %s", name)
	return nil
}

// plainTable is the wide view (every column), without colour.
func plainTable(s *Site) string {
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.Ascii)
	return Table(s, TableOptions{Renderer: r, Wide: true})
}

// narrowTable is the default view, without colour or with.
func narrowTable(s *Site, color bool) string {
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.Ascii)
	if color {
		r.SetColorProfile(termenv.ANSI256)
	}
	return Table(s, TableOptions{Renderer: r})
}

func TestHealthySite(t *testing.T) {
	s := labSite(t, nil)
	if !s.Healthy || s.Level != OK || len(s.Problems) != 0 {
		t.Fatalf("healthy lab judged %s: %+v", s.Level, s.Problems)
	}
	for _, h := range s.Hosts {
		if h.Level != OK {
			t.Errorf("%s: %s", h.Name, h.Level)
		}
	}
	for _, name := range []string{"compile1.lab.test", "compile2.lab.test"} {
		h := host(t, s, name)
		if len(h.HAProxy) != 1 || h.HAProxy[0].State != "UP" || h.HAProxy[0].LB != "lb.lab.test" {
			t.Errorf("%s: haproxy %+v", name, h.HAProxy)
		}
		if h.Server.JRuby == nil || h.Server.JRuby.Total == 0 {
			t.Errorf("%s: jruby %+v", name, h.Server)
		}
		for _, e := range h.Code.Envs {
			if e.Drift != "" || e.Commit != s.Control.Branches[e.Name] {
				t.Errorf("%s: %+v", name, e)
			}
		}
	}
	// every cell that applies is filled: no "?" anywhere in the table
	tab := plainTable(s)
	if strings.Contains(tab, " ? ") {
		t.Errorf("a cell is unknown:\n%s", tab)
	}
	golden.Check(t, "../../fixtures/golden/status_healthy.txt", tab)
}

func TestDrained(t *testing.T) {
	// what `set server compilers/compile2 state drain` shows (admin state 8)
	s := labSite(t, edits{"lb.lab.test": drain("compile2")})
	h := host(t, s, "compile2.lab.test")
	if v := h.HAProxy[0]; v.State != "DRAIN" || v.Admin != "drain" || v.Level != Warn {
		t.Errorf("drained: %+v", v)
	}
	if !s.Healthy || h.Level != Warn {
		t.Errorf("a drained compiler is a warning, not unhealthy: site %s, host %s", s.Level, h.Level)
	}
	if !strings.Contains(plainTable(s), "lb DRAIN 0 sess") {
		t.Errorf("no DRAIN in the table:\n%s", plainTable(s))
	}
}

func TestJVMStopped(t *testing.T) {
	s := labSite(t, edits{"compile2.lab.test": stopped, "lb.lab.test": down("compile2")})
	h := host(t, s, "compile2.lab.test")
	if s.Healthy || h.Level != Bad {
		t.Fatalf("stopped JVM: site %s, host %s", s.Level, h.Level)
	}
	if h.Server.Error != "connection refused" || h.Services[0].State != "inactive" || h.HAProxy[0].State != "DOWN" {
		t.Errorf("row: %+v %+v %+v", h.Server, h.Services, h.HAProxy)
	}
	if other := host(t, s, "compile1.lab.test"); other.Level != OK {
		t.Errorf("compile1 flagged too: %+v", s.Problems)
	}
	golden.Check(t, "../../fixtures/golden/status_stopped.txt", plainTable(s))
}

func TestDrift(t *testing.T) {
	s := labSite(t, edits{"compile2.lab.test": func(t *testing.T, out string) string { return replace(t, out, prodCommit, oldCommit) }})
	h := host(t, s, "compile2.lab.test")
	if s.Healthy || h.Level != Bad {
		t.Fatalf("drift: site %s, host %s", s.Level, h.Level)
	}
	e := findEnv(h.Code, "production")
	if e.Drift != "behind" || e.Commit != oldCommit {
		t.Errorf("production on compile2: %+v", e)
	}
	if !strings.Contains(plainTable(s), "production "+oldCommit[:7]+" DRIFT (behind)") {
		t.Errorf("table:\n%s", plainTable(s))
	}
	if host(t, s, "compile1.lab.test").Level != OK || host(t, s, "ca.lab.test").Level != OK {
		t.Errorf("others flagged: %+v", s.Problems)
	}
}

// TestDriftPeers: without the control repository, the odd one out among
// compilers differs; a new branch deployed on one only is missing on the
// others.
func TestDriftPeers(t *testing.T) {
	code := func(envs ...Env) *Host {
		return &Host{spec: spec{Roles: []string{RoleCompiler}}, Code: &Code{Envs: envs}}
	}
	hosts := []*Host{
		code(Env{Name: "production", Commit: "aaaaaaaa"}, Env{Name: "feature", Commit: "ffffffff"}),
		code(Env{Name: "production", Commit: "aaaaaaaa"}),
		code(Env{Name: "production", Commit: "bbbbbbbb"}),
	}
	for i, h := range hosts {
		h.Name = []string{"c1", "c2", "c3"}[i]
	}
	s := Judge(hosts, now, DefaultHorizon)
	want := map[string]map[string]string{
		"c1": {"production": "", "feature": ""},
		"c2": {"production": "", "feature": "missing"},
		"c3": {"production": "differs", "feature": "missing"},
	}
	for _, h := range hosts {
		for env, drift := range want[h.Name] {
			if e := findEnv(h.Code, env); e == nil || e.Drift != drift {
				t.Errorf("%s %s: %+v, want drift %q", h.Name, env, e, drift)
			}
		}
	}
	if s.Healthy {
		t.Error("drift judged healthy")
	}
}

func TestCertHorizon(t *testing.T) {
	s := labSite(t, nil)
	soon := Judge(s.Hosts, host(t, s, "puppetdb.lab.test").Cert.NotAfter.Add(-10*24*time.Hour), DefaultHorizon)
	if c := host(t, soon, "puppetdb.lab.test").Cert; c.Level != Warn || c.DaysLeft != 10 {
		t.Errorf("10 days before: %+v", c)
	}
	if !soon.Healthy {
		t.Errorf("a certificate inside the horizon is a warning: %+v", soon.Problems)
	}
	late := Judge(s.Hosts, host(t, s, "puppetdb.lab.test").Cert.NotAfter.Add(time.Hour), DefaultHorizon)
	if c := host(t, late, "puppetdb.lab.test").Cert; c.Level != Bad || late.Healthy {
		t.Errorf("expired: %+v", c)
	}
}

func TestJSON(t *testing.T) {
	s := labSite(t, edits{"lb.lab.test": drain("compile2")})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	// the fields an end-to-end test asserts on
	var v struct {
		Healthy bool   `json:"healthy"`
		Level   string `json:"level"`
		Hosts   []struct {
			Name    string `json:"name"`
			Level   string `json:"level"`
			HAProxy []struct {
				State string `json:"state"`
			} `json:"haproxy"`
			Server *struct {
				Simple string `json:"simple"`
				JRuby  struct{ Free, Total int }
			} `json:"server"`
			Code *struct {
				Envs []struct{ Name, Commit, Drift string } `json:"environments"`
			} `json:"code"`
		} `json:"hosts"`
		Problems []struct{ Host, Level, What, Text string } `json:"problems"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	c2 := v.Hosts[2]
	if !v.Healthy || v.Level != "warn" || len(v.Hosts) != 6 || c2.Name != "compile2.lab.test" || c2.HAProxy[0].State != "DRAIN" || c2.Level != "warn" ||
		c2.Server.Simple != "running" || c2.Server.JRuby.Total == 0 || len(c2.Code.Envs) != 2 ||
		len(v.Problems) != 1 || v.Problems[0].What != "haproxy" {
		t.Errorf("json: %s", b)
	}
}

// Real values of the lab's control repository (fixtures/control-repo).
const (
	prodCommit = "cba9ab4df47184f317faf142be975fb6bf643d4b"
	oldCommit  = "0123456789abcdef0123456789abcdef01234567"
)

func replace(t *testing.T, out, old, new string) string {
	t.Helper()
	if !strings.Contains(out, old) {
		t.Fatalf("%q not in the answer", old)
	}
	return strings.ReplaceAll(out, old, new)
}

// lbLine rewrites server's line in `show servers state` (fields: be_id
// be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...) and
// in `show stat` (status is the 18th CSV field, check_status the 37th).
func lbLine(server string, op, admin int, status, check string) func(*testing.T, string) string {
	return func(t *testing.T, out string) string {
		lines := strings.Split(out, "\n")
		n := 0
		for i, l := range lines {
			f := strings.Fields(l)
			if len(f) > 7 && f[1] == "compilers" && f[3] == server {
				f[5], f[6] = strconv.Itoa(op), strconv.Itoa(admin)
				lines[i] = strings.Join(f, " ")
				n++
			}
			c := strings.Split(l, ",")
			if len(c) > 40 && c[0] == "compilers" && c[1] == server {
				c[17], c[36] = status, check
				lines[i] = strings.Join(c, ",")
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%s: %d lines rewritten, want 2", server, n)
		}
		return strings.Join(lines, "\n")
	}
}

// drain: `set server compilers/S state drain` (admin state 8, DRAIN).
func drain(server string) func(*testing.T, string) string {
	return lbLine(server, 2, haproxy.AdmForcedDrain, "DRAIN", "L7OK")
}

// down: the health check fails (op state 0, DOWN, L4CON).
func down(server string) func(*testing.T, string) string {
	return lbLine(server, 0, 0, "DOWN", "L4CON")
}

// stopped: puppetserver's JVM is not running: the unit inactive, nothing on
// 8140 (curl exit 7), as compiler-starting.txt shows for real.
func stopped(t *testing.T, out string) string {
	out = setSection(t, out, "svc", "inactive", 3)
	return setSection(t, out, "puppetserver", "\n"+httpMarker+" 000 7", 7) // --fail-early: the first call ends it
}

// setSection replaces a section's body and exit status.
func setSection(t *testing.T, out, name, body string, rc int) string {
	t.Helper()
	start := strings.Index(out, marker+" "+name+"\n")
	if start < 0 {
		t.Fatalf("no section %s", name)
	}
	end := strings.Index(out[start:], marker+" end ")
	if end < 0 {
		t.Fatalf("section %s has no end", name)
	}
	end += start
	eol := strings.IndexByte(out[end:], '\n') + end
	return out[:start] + fmt.Sprintf("%s %s\n%s\n%s end %d", marker, name, body, marker, rc) + out[eol:]
}
