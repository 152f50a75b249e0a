package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What a claim needs beside its figure: a refusal that is a TLS refusal
// next to a certificate the same server accepts, and agent runs that
// crossed the window in which something could have failed.

// tlsAnswer is what one HTTPS request with a client certificate got, as
// curl saw it on a lab host.
type tlsAnswer struct {
	at   time.Time // on the host's clock (the lab's hosts share this one)
	http string    // the HTTP status, 000 when there was none
	exit int       // curl's exit code
	msg  string    // curl's error message
}

// accepted: the server completed the handshake and served the request.
func (a tlsAnswer) accepted() bool { return a.exit == 0 && a.http == "200" }

// refusedTLS: the server ended the TLS handshake with an alert (curl exit
// 35, SSL connect error, or 56, a receive failure, with the alert in its
// message) and sent no HTTP answer. A closed port (exit 7), a timeout (28)
// or a server certificate curl would not trust (60) is no such refusal:
// each of those would make a "refused" pass while the server never judged
// the client's certificate.
func (a tlsAnswer) refusedTLS() bool {
	return a.http == "000" && (a.exit == 35 || a.exit == 56) && strings.Contains(strings.ToLower(a.msg), "alert")
}

func (a tlsAnswer) String() string {
	return fmt.Sprintf("http %s, curl exit %d %q", a.http, a.exit, a.msg)
}

// tlsPair is one server's answers in one sweep: to the certificate under
// test and to the control, a certificate the server must accept.
type tlsPair struct{ probe, control tlsAnswer }

// refused: the certificate under test was refused by TLS while the control
// was served, in the same sweep.
func (p tlsPair) refused() bool { return p.probe.refusedTLS() && p.control.accepted() }

// clientCert is a certificate and its key on the host that sweeps.
type clientCert struct{ cert, key string }

// tlsSweep asks each server (short names; .lab.test is added) on port 8140,
// from host in one SSH session, for path with the probe certificate and then
// with the control certificate, verifying the servers against the host's CA
// bundle.
func (s *site) tlsSweep(from string, servers []string, path string, probe, control clientCert) map[string]tlsPair {
	s.t.Helper()
	script := "ca=$(puppet config print localcacert);"
	for _, h := range servers {
		for _, c := range []struct {
			kind string
			cert clientCert
		}{{"probe", probe}, {"control", control}} {
			script += fmt.Sprintf(" echo \"%s %s $(date +%%s.%%N) $(curl -s -o /dev/null --max-time 10 -w '%%{http_code} %%{exitcode} %%{errormsg}' --cert %s --key %s --cacert \"$ca\" 'https://%s.lab.test:8140%s')\";",
				h, c.kind, c.cert.cert, c.cert.key, h, path)
		}
	}
	out := s.ssh(from, script)
	got := map[string]tlsPair{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(l, " ", 6)
		if len(f) < 5 {
			s.t.Errorf("tls sweep from %s: unreadable line %q", from, l)
			continue
		}
		sec, _ := strconv.ParseFloat(f[2], 64)
		a := tlsAnswer{at: time.Unix(0, int64(sec*1e9)), http: f[3]}
		a.exit, _ = strconv.Atoi(f[4])
		if len(f) == 6 {
			a.msg = f[5]
		}
		p := got[f[0]]
		if f[1] == "probe" {
			p.probe = a
		} else {
			p.control = a
		}
		got[f[0]] = p
	}
	for _, h := range servers {
		if _, ok := got[h]; !ok {
			s.t.Errorf("tls sweep from %s: no answer from %s in\n%s", from, h, out)
		}
	}
	return got
}

// refusedBy sweeps until every server has refused the probe certificate by
// TLS in a sweep in which it served the control, or until the deadline, and
// returns when each first did. A sweep in which the control was not served
// (the server restarting, unreachable) proves nothing and is not counted.
func (s *site) refusedBy(from string, servers []string, path string, probe, control clientCert, deadline time.Time) map[string]time.Time {
	s.t.Helper()
	at := map[string]time.Time{}
	last := map[string]tlsPair{}
	for len(at) < len(servers) && time.Now().Before(deadline) {
		for h, p := range s.tlsSweep(from, servers, path, probe, control) {
			last[h] = p
			if _, done := at[h]; !done && p.refused() {
				at[h] = p.probe.at
			}
		}
		if len(at) < len(servers) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, h := range servers {
		if _, ok := at[h]; !ok {
			s.t.Errorf("%s never refused the certificate by TLS next to a served control; last sweep: probe %s; control %s",
				h, last[h].probe, last[h].control)
		}
	}
	return at
}

// span is the time a troupe run worked: from the start of its first host
// result to the end of its last.
func span(r run) [2]time.Time {
	return resultsWindow(func(event) bool { return true }, r)
}

// hostWindow is when host was worked on in the steps under prefix (not
// skipped): from the start of its first such step to the end of its last.
func hostWindow(r run, prefix, host string) [2]time.Time {
	return resultsWindow(func(e event) bool {
		return e.Host == host && e.Status != "skipped" && strings.HasPrefix(e.Step, prefix)
	}, r)
}

// resultsWindow is from the start of the first host result that keep
// takes, over the runs, to the end of the last (zero when none).
func resultsWindow(keep func(event) bool, runs ...run) [2]time.Time {
	var w [2]time.Time
	for _, x := range runs {
		for _, e := range x.events {
			if e.Kind != "host_result" || !keep(e) {
				continue
			}
			if start := e.Time.Add(-e.Duration); w[0].IsZero() || start.Before(w[0]) {
				w[0] = start
			}
			if e.Time.After(w[1]) {
				w[1] = e.Time
			}
		}
	}
	return w
}

// riskWindow is a stretch of time in which an agent run could have failed
// (a compiler out of the pool, the CA stopped, PuppetDB restarting), named
// for the report.
type riskWindow struct {
	name string
	w    [2]time.Time
}

// crossed counts the runs that were under way at some moment of w.
func crossed(runs []agentRun, w [2]time.Time) int {
	n := 0
	for _, r := range runs {
		if r.start.Before(w[1]) && r.end.After(w[0]) {
			n++
		}
	}
	return n
}

// mustCross fails the test unless agent runs crossed every window: a
// "0 failed runs" is a claim about those windows, and a window no run
// crossed proved nothing. A window that was never found (zero) fails too.
func mustCross(t *testing.T, runs []agentRun, windows ...riskWindow) {
	t.Helper()
	if len(windows) == 0 {
		t.Errorf("no risk window named: the agents' runs prove nothing")
	}
	var parts []string
	for _, w := range windows {
		if w.w[0].IsZero() || w.w[1].IsZero() {
			t.Errorf("risk window %q not found in the run's events", w.name)
			continue
		}
		n := crossed(runs, w.w)
		record(t, "agent runs across "+w.name, float64(n), "count")
		parts = append(parts, fmt.Sprintf("%s %s→%s (%s): %d runs", w.name, w.w[0].Format("15:04:05"), w.w[1].Format("15:04:05"),
			w.w[1].Sub(w.w[0]).Round(time.Second), n))
		if n == 0 {
			t.Errorf("no agent run crossed %q (%s → %s): that window was not tested", w.name, w.w[0].Format("15:04:05.0"), w.w[1].Format("15:04:05.0"))
		}
	}
	t.Logf("CROSSED: %s", strings.Join(parts, "; "))
}
