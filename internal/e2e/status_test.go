package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// siteStatus is what the e2e test reads of `troupe status --format json`
// (levels as the strings ok, warn, bad).
type siteStatus struct {
	Level    string `json:"level"`
	Healthy  bool   `json:"healthy"`
	WallMS   int64  `json:"wall_ms"`
	Problems []struct {
		Host, Level, What, Text string
	} `json:"problems"`
	Hosts []hostStatus `json:"hosts"`
}

// hostStatus is one row.
type hostStatus struct {
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Level    string   `json:"level"`
	Packages []struct {
		Name, Version string
	} `json:"packages"`
	Services []struct {
		Name, State string
	} `json:"services"`
	Server *struct {
		Simple string `json:"simple"`
		Error  string `json:"error"`
		JRuby  *struct {
			Free, Total int
		} `json:"jruby"`
	} `json:"server"`
	HAProxy []lbView `json:"haproxy"`
	Pool    *struct {
		VIP      string `json:"vip"`
		HoldsVIP bool   `json:"holds_vip"`
	} `json:"pool"`
	Cert *struct {
		DaysLeft int      `json:"days_left"`
		SANs     []string `json:"sans"`
		Revoked  bool     `json:"revoked"`
	} `json:"cert"`
	Code *struct {
		Envs []struct {
			Name, Commit, Drift string
		} `json:"environments"`
	} `json:"code"`
	PuppetDB *struct {
		State       string    `json:"state"`
		QueueDepth  *int      `json:"queue_depth"`
		LastCommand time.Time `json:"last_command"`
	} `json:"puppetdb"`
	Replica *struct {
		Serial string `json:"serial"`
		InSync bool   `json:"in_sync"`
		Lag    int64  `json:"lag_seconds"`
		Server string `json:"server"`
	} `json:"ca_replica"`
}

// status runs `troupe status --format json` and returns what it read and
// its exit code.
func (s *site) status(ctx context.Context) (siteStatus, int) {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, s.bin, "status", "-i", s.inv, "--format", "json", "--color", "never")
	cmd.Dir = s.dir
	t0 := time.Now()
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("troupe status: %v", err)
	}
	var st siteStatus
	if err := json.Unmarshal(out, &st); err != nil {
		s.t.Fatalf("troupe status --format json (exit %d): %v\n%.2000s", code, err, out)
	}
	seconds(s.t, "troupe status", time.Since(t0))
	s.t.Logf("troupe status: exit %d, level %s, %d problems, wall %s", code, st.Level, len(st.Problems), time.Since(t0).Round(10*time.Millisecond))
	return st, code
}

func (st siteStatus) problems() string {
	var out []string
	for _, p := range st.Problems {
		out = append(out, p.Level+" "+p.Host+" "+p.What+": "+p.Text)
	}
	return strings.Join(out, "\n")
}

// statusScenario: `troupe status` on the healthy site (exit 0, every row
// filled), with a compiler drained (DRAIN, a warning) and with compilers on
// different commits (drift, exit 1); it leaves every compiler on the
// branch's commit again.
func statusScenario(ctx context.Context, t *testing.T, s *site) {
	statusReadOnly(ctx, t, s)
	st, code := s.status(ctx)
	if code != 0 || !st.Healthy {
		t.Fatalf("status of the healthy site: exit %d, level %s\n%s", code, st.Level, st.problems())
	}
	for _, h := range st.Hosts {
		if len(h.Roles) == 0 {
			continue // a spare host (compile3 on a suite without add-compiler)
		}
		// the LB has no Puppet package, the lab's agents no agent service
		if h.Level != "ok" || len(h.Packages)+len(h.Services) == 0 {
			t.Errorf("%s: level %s, %d packages, %d services", h.Name, h.Level, len(h.Packages), len(h.Services))
		}
		for _, p := range h.Packages {
			if p.Version == "" {
				t.Errorf("%s: no version for %s", h.Name, p.Name)
			}
		}
		switch h.Roles[0] {
		case "compiler":
			if h.Server == nil || h.Server.Simple != "running" || h.Server.JRuby == nil || h.Server.JRuby.Total == 0 ||
				len(h.HAProxy) != len(s.loadBalancers()) || !allUP(h.HAProxy) || h.Cert == nil || h.Code == nil || len(h.Code.Envs) == 0 {
				b, _ := json.Marshal(h)
				t.Errorf("compiler row not filled: %s", b)
			} else if !strings.Contains(strings.Join(h.Cert.SANs, ","), "DNS:puppet.lab.test") {
				t.Errorf("%s: SANs %v", h.Name, h.Cert.SANs)
			}
		case "puppetdb":
			if h.PuppetDB == nil || h.PuppetDB.State != "running" || h.PuppetDB.QueueDepth == nil || h.PuppetDB.LastCommand.IsZero() {
				b, _ := json.Marshal(h.PuppetDB)
				t.Errorf("PuppetDB row not filled: %s", b)
			}
		}
	}

	// A drained compiler: shown as DRAIN, a warning, exit 0.
	s.troupe(ctx, "run", "lb-server", "--param", "state=drain", "--limit", "compile1.lab.test")
	st, code = s.status(ctx)
	if h := st.host("compile1.lab.test"); code != 0 || h == nil || len(h.HAProxy) == 0 || h.HAProxy[0].State != "DRAIN" || h.Level != "warn" {
		t.Errorf("status with compile1 drained: exit %d, compile1 %+v\n%s", code, h, st.problems())
	}
	s.troupe(ctx, "run", "lb-server", "--param", "state=ready", "--limit", "compile1.lab.test")

	// Drift: a commit deployed on compile2 only.
	sha := s.pushControlCommit("drift e2e " + time.Now().Format(time.RFC3339Nano))
	s.troupe(ctx, "run", "deploy-code", "--param", "environment=production", "--limit", "compile2.lab.test")
	st, code = s.status(ctx)
	if code != 1 || !strings.Contains(st.problems(), "drift") {
		t.Errorf("status with compile2 alone on %.12s: exit %d\n%s", sha, code, st.problems())
	}
	for _, c := range s.compilers() {
		h := st.host(c + ".lab.test")
		drift := ""
		for _, e := range h.Code.Envs {
			if e.Name == "production" {
				drift = e.Drift
			}
		}
		// the others are behind the branch; compile2 differs from them when
		// they are a majority (with two compilers, neither is)
		if c == "compile2" && drift == "behind" || c != "compile2" && drift != "behind" {
			t.Errorf("%s: production drift %q (compile2 alone is on the branch's commit)", c, drift)
		}
	}

	// As it found the site: every compiler on the branch's commit.
	s.troupe(ctx, "run", "deploy-code", "--param", "environment=production")
	if st, code = s.status(ctx); code != 0 || strings.Contains(st.problems(), "drift") {
		t.Errorf("status after deploy-code on every compiler: exit %d\n%s", code, st.problems())
	}
}

func (st siteStatus) host(name string) *hostStatus {
	for i := range st.Hosts {
		if st.Hosts[i].Name == name {
			return &st.Hosts[i]
		}
	}
	return nil
}

// lbView is one HAProxy's view of a server.
type lbView struct {
	State string `json:"state"`
	Admin string `json:"admin"`
	Level string `json:"level"`
}

// allUP: every HAProxy's view of a server is UP.
func allUP(views []lbView) bool {
	for _, v := range views {
		if v.State != "UP" {
			return false
		}
	}
	return true
}
