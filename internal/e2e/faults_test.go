package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// killJVMScenario: a compiler's JVM is killed with SIGKILL while two agents
// run through the load balancer. HAProxy's retries/redispatch send refused
// connections to another compiler, and observe layer4 marks the dead one
// DOWN on its first refused connection. What no load balancer can save is a
// request already on the JVM when it died; those runs are reported, every
// run that started after the kill must be clean. The scenario runs last:
// the JVM stays dead.
func killJVMScenario(ctx context.Context, t *testing.T, s *site) {
	const victim = "compile2"
	agents := startAgentLoop(t, s, "agent1", "agent2")
	lb := startLBSampler(s)
	// Let both agents finish a run on the healthy site first.
	for deadline := time.Now().Add(3 * time.Minute); len(agents.snapshot()) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}

	pid := strings.TrimSpace(s.ssh(victim, "pgrep -f '[p]uppetserver.jar' | head -1"))
	if pid == "" {
		t.Fatalf("no puppetserver JVM on %s", victim)
	}
	// Kill it while it serves an agent, if one comes within a minute: that
	// is the case no load balancer can save, and the figure says what it costs.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if s.lbSample().scur[victim] > 0 {
			break
		}
	}
	killed := time.Now()
	s.ssh(victim, "kill -9 "+pid)
	t.Logf("kill -9 %s (puppetserver JVM on %s) at %s", pid, victim, killed.Format("15:04:05.0"))

	// Keep the agents running against the site with one compiler dead for a
	// while: every run in this stretch crosses HAProxy with compile2 refusing.
	statusWhileDead(ctx, t, s, victim)
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline) || len(runsAfter(agents.snapshot(), killed)) < 4; {
		if time.Since(killed) > 5*time.Minute {
			break
		}
		time.Sleep(time.Second)
	}

	// It stays dead: this scenario runs last and the lab is torn down after
	// it (the lab's systemctl stand-in restarts nothing on its own).
	samples := lb.stop()
	runs := agents.stop()
	lbReport(t, samples)

	// When did HAProxy take it out of the pool?
	down := time.Time{}
	for _, smp := range samples {
		if smp.at.After(killed) && !strings.HasPrefix(smp.status[victim], "UP") {
			down = smp.at
			break
		}
	}
	if down.IsZero() {
		t.Errorf("HAProxy never marked %s down after its JVM was killed", victim)
	}

	var inFlight, inFlightFailed, after, afterFailed int
	for _, r := range runs {
		switch {
		case r.end.Before(killed):
		case r.start.Before(killed):
			inFlight++
			if r.failed() {
				inFlightFailed++
				t.Logf("run in flight at the kill, on %s (%s → %s, rc %d): %s", r.agent,
					r.start.Format("15:04:05"), r.end.Format("15:04:05"), r.rc, oneLine(r.errors))
			}
		default:
			after++
			if r.failed() {
				afterFailed++
				t.Errorf("run started after the kill failed or logged an error, on %s (%s → %s, rc %d, compiled by %q):\n%s",
					r.agent, r.start.Format("15:04:05"), r.end.Format("15:04:05"), r.rc, r.by, r.errors)
			}
		}
	}
	t.Logf("KILL: HAProxy marked %s down %s after the kill; %d runs in flight at the kill, %d of them failed or logged an error; %d runs started after it, %d failed or logged an error",
		victim, down.Sub(killed).Round(100*time.Millisecond), inFlight, inFlightFailed, after, afterFailed)
	if after < 4 {
		t.Errorf("only %d agent runs after the kill", after)
	}
}

// runsAfter is the runs that started after t.
func runsAfter(runs []agentRun, t time.Time) []agentRun {
	var out []agentRun
	for _, r := range runs {
		if r.start.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// statusWhileDead: `troupe status` flags the compiler whose JVM is dead
// and exits 1; the other compilers stay ok.
func statusWhileDead(ctx context.Context, t *testing.T, s *site, victim string) {
	st, code := s.status(ctx)
	if code != 1 {
		t.Errorf("status with %s's JVM dead: exit %d, want 1\n%s", victim, code, st.problems())
	}
	for _, c := range s.compilers() {
		h := st.host(c + ".lab.test")
		switch {
		case h == nil:
			t.Errorf("status has no row for %s", c)
		case c == victim && h.Level != "bad":
			t.Errorf("status: %s level %q with its JVM dead\n%s", c, h.Level, st.problems())
		case c != victim && h.Level == "bad":
			t.Errorf("status: %s level bad while only %s is dead\n%s", c, victim, st.problems())
		}
	}
}
