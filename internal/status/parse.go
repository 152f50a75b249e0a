package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/haproxy"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/report"
)

// section is one probe's output in the script's answer.
type section struct {
	Body string
	RC   int
	Done bool // the end marker arrived (false: the host's time ran out first)
}

// splitSections cuts the script's stdout into its sections by name.
func splitSections(out string) map[string]section {
	secs := map[string]section{}
	var name string
	var body strings.Builder
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, marker+" ")
		if !ok {
			if name != "" {
				body.WriteString(l + "\n")
			}
			continue
		}
		if rc, isEnd := strings.CutPrefix(rest, "end "); isEnd && name != "" {
			n, _ := strconv.Atoi(strings.TrimSpace(rc))
			secs[name] = section{Body: strings.TrimSpace(body.String()), RC: n, Done: true}
			name = ""
			continue
		}
		if name != "" { // a section that never ended
			secs[name] = section{Body: strings.TrimSpace(body.String())}
		}
		name = strings.TrimSpace(rest)
		body.Reset()
	}
	if name != "" {
		secs[name] = section{Body: strings.TrimSpace(body.String())}
	}
	return secs
}

// failure is a section's failure as shown in a cell: "" when it succeeded.
// what says what was being asked, for a missing section.
func (s section) failure() string {
	switch {
	case !s.Done:
		return "timeout"
	case s.RC != 0:
		msg := firstLine(s.Body)
		if msg == "" {
			msg = fmt.Sprintf("exit %d", s.RC)
		}
		return msg
	}
	return ""
}

// firstLine is s's first non-empty line, cleaned of escape codes and cut to
// a table cell's width.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(report.Clean(l)); l != "" {
			return cut(l, 81) // 80 runes and "…": never half a rune
		}
	}
	return ""
}

// curlReason names curl's exit codes that mean the service did not answer
// (curl(1), EXIT CODES).
func curlReason(rc int) string {
	switch rc {
	case 6:
		return "cannot resolve host"
	case 7:
		return "connection refused"
	case 28:
		return "timeout"
	case 35:
		return "TLS handshake failed"
	case 52:
		return "empty reply"
	case 56:
		return "connection reset"
	case 58:
		return "cannot load client certificate"
	}
	return fmt.Sprintf("curl exit %d", rc)
}

// httpBody reads a section written by curl -w '\n%{http_code}': the body
// and the status code, or the reason there is none.
func httpBody(s section) (body string, code int, err error) {
	if !s.Done {
		return "", 0, fmt.Errorf("timeout")
	}
	if s.RC != 0 {
		return "", 0, fmt.Errorf("%s", curlReason(s.RC))
	}
	body, c := "", s.Body
	if i := strings.LastIndexByte(s.Body, '\n'); i >= 0 {
		body, c = strings.TrimSpace(s.Body[:i]), s.Body[i+1:]
	}
	code, err = strconv.Atoi(strings.TrimSpace(c))
	if err != nil {
		return "", 0, fmt.Errorf("no HTTP status in %q", firstLine(s.Body))
	}
	return body, code, nil
}

// splitHTTP cuts a section of n curl transfers, each answer followed by
// "@@http@@ CODE EXIT", into one section per transfer in httpBody's form.
// Transfers after the one that ended the call are not Done.
func splitHTTP(s section, n int) []section {
	out := make([]section, n)
	i := 0
	var body strings.Builder
	for _, l := range strings.Split(s.Body, "\n") {
		rest, ok := strings.CutPrefix(l, httpMarker+" ")
		if !ok || i >= n {
			body.WriteString(l + "\n")
			continue
		}
		code, exit, _ := strings.Cut(rest, " ")
		rc, _ := strconv.Atoi(strings.TrimSpace(exit))
		out[i] = section{Body: strings.TrimSpace(body.String()) + "\n" + code, RC: rc, Done: true}
		body.Reset()
		i++
	}
	if i == 0 && s.Done && s.RC != 0 {
		// curl said nothing per transfer: an error of its own
		out[0] = section{Body: s.Body, RC: s.RC, Done: true}
	}
	return out
}

// httpOK is httpBody's body of a 200 answer; any other status is an error.
func httpOK(s section) (string, error) {
	body, code, err := httpBody(s)
	if err == nil && code != 200 {
		err = fmt.Errorf("HTTP %d: %s", code, firstLine(body))
	}
	return body, err
}

// parsePackages reads dpkg-query lines: name, version, status abbreviation
// ("ii " when installed).
func parsePackages(body string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 3 || !strings.HasPrefix(f[2], "ii") {
			continue
		}
		out[f[0]] = f[1]
	}
	return out
}

// opensslTime is the time format openssl prints (notAfter=, nextUpdate=).
const opensslTime = "Jan _2 15:04:05 2006 MST"

// pemBlock is one certificate or CRL of a bundle, as openssl printed it.
type pemBlock struct {
	Name   string    // subject or issuer CN
	Time   time.Time // notAfter or nextUpdate
	SANs   []string
	Serial string // a certificate's serial, upper-case hex (openssl's serial=)
	Issuer string // a certificate's issuer CN
}

// parsePEMs reads the eachpem output of `openssl x509 -noout -subject
// -enddate [-ext subjectAltName]` or `openssl crl -noout -issuer
// -nextupdate`, one block per certificate or CRL.
func parsePEMs(body string) ([]pemBlock, error) {
	var out []pemBlock
	var cur pemBlock
	san := false
	for _, l := range strings.Split(body, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == pemMarker:
			if cur.Time.IsZero() {
				return nil, fmt.Errorf("openssl: no date in %q", firstLine(body))
			}
			out = append(out, cur)
			cur, san = pemBlock{}, false
		case strings.HasPrefix(t, "notAfter="), strings.HasPrefix(t, "nextUpdate="):
			_, v, _ := strings.Cut(t, "=")
			tm, err := time.Parse(opensslTime, v)
			if err != nil {
				return nil, fmt.Errorf("openssl date %q: %w", v, err)
			}
			cur.Time = tm.UTC()
		case strings.HasPrefix(t, "serial="):
			cur.Serial = strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(t, "serial=")))
		case strings.HasPrefix(t, "subject="), strings.HasPrefix(t, "issuer="):
			k, v, _ := strings.Cut(t, "=")
			if _, cn, ok := strings.Cut(v, "CN = "); ok {
				v = cn
			}
			cur.Name = strings.TrimSpace(v)
			if k == "issuer" {
				cur.Issuer = cur.Name
			}
		case strings.HasPrefix(t, "X509v3 Subject Alternative Name"):
			san = true
		case san && t != "":
			for _, n := range strings.Split(t, ",") {
				n = strings.TrimSpace(n)
				if n != "" && !slices.Contains(cur.SANs, n) {
					cur.SANs = append(cur.SANs, n)
				}
			}
			san = false
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no certificate: %s", firstLine(body))
	}
	return out, nil
}

// serverStatus reads /status/v1/services?level=critical: service → state.
func parseCritical(body string) ([]ServiceState, error) {
	var m map[string]struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, fmt.Errorf("services status: %w", err)
	}
	out := make([]ServiceState, 0, len(m))
	for name, s := range m {
		out = append(out, ServiceState{Name: name, State: s.State})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// parseJRuby reads /status/v1/services/jruby-metrics?level=debug: the pool's
// free and total instances (status.experimental.metrics, Puppet Server's
// jruby-metrics status callback).
func parseJRuby(body string) (*JRuby, error) {
	var v struct {
		Status struct {
			Experimental struct {
				Metrics *struct {
					Free  *int `json:"num-free-jrubies"`
					Total *int `json:"num-jrubies"`
				} `json:"metrics"`
			} `json:"experimental"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return nil, fmt.Errorf("jruby-metrics: %w", err)
	}
	m := v.Status.Experimental.Metrics
	if m == nil || m.Free == nil || m.Total == nil {
		return nil, fmt.Errorf("jruby-metrics: no num-free-jrubies/num-jrubies")
	}
	return &JRuby{Free: *m.Free, Total: *m.Total}, nil
}

// parseCode reads the code section: "@@env@@ NAME" then that environment's
// .r10k-deploy.json (empty when r10k wrote none).
func parseCode(body string) []Env {
	var out []Env
	var name string
	var js strings.Builder
	flush := func() {
		if name == "" {
			return
		}
		e := Env{Name: name}
		var d struct {
			Signature  string `json:"signature"`
			FinishedAt string `json:"finished_at"`
		}
		if s := strings.TrimSpace(js.String()); s == "" {
			e.Error = "no .r10k-deploy.json"
		} else if err := json.Unmarshal([]byte(s), &d); err != nil || d.Signature == "" {
			e.Error = "no signature in .r10k-deploy.json"
		} else {
			e.Commit = d.Signature
			// Ruby's Time#to_s, as r10k's JSON.pretty_generate writes it
			// (r10k lib/r10k/action/deploy/environment.rb, write_environment_info!)
			if at, err := time.Parse("2006-01-02 15:04:05 -0700", d.FinishedAt); err == nil {
				e.Deployed = at.UTC()
			}
		}
		out = append(out, e)
	}
	for _, l := range strings.Split(body, "\n") {
		if n, ok := strings.CutPrefix(l, envMarker+" "); ok {
			flush()
			name = strings.TrimSpace(n)
			js.Reset()
			continue
		}
		js.WriteString(l + "\n")
	}
	flush()
	return out
}

// parseHeads reads "remote URL" then `git ls-remote --heads`: environment
// name → commit (r10k's branch-to-environment mapping, puppet.EnvName).
func parseHeads(body string) (remote string, heads map[string]string) {
	first, rest, _ := strings.Cut(body, "\n")
	if r, ok := strings.CutPrefix(first, "remote "); ok {
		remote = strings.TrimSpace(r)
	} else {
		rest = body
	}
	return remote, puppet.ParseHeads(rest)
}

// parsePDBStatus reads /status/v1/services/puppetdb-status.
func parsePDBStatus(body string) (state string, queue *int, err error) {
	var v struct {
		State  string `json:"state"`
		Status struct {
			QueueDepth *int `json:"queue_depth"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return "", nil, fmt.Errorf("puppetdb-status: %w", err)
	}
	return v.State, v.Status.QueueDepth, nil
}

// parsePDBNodes reads the nodes query: how many nodes, and the newest of
// their facts, catalog and report timestamps (the last command PuppetDB
// stored).
func parsePDBNodes(body string) (int, time.Time, error) {
	var nodes []struct {
		Facts   *time.Time `json:"facts_timestamp"`
		Catalog *time.Time `json:"catalog_timestamp"`
		Report  *time.Time `json:"report_timestamp"`
	}
	if err := json.Unmarshal([]byte(body), &nodes); err != nil {
		return 0, time.Time{}, fmt.Errorf("nodes query: %w", err)
	}
	var last time.Time
	for _, n := range nodes {
		for _, t := range []*time.Time{n.Facts, n.Catalog, n.Report} {
			if t != nil && t.After(last) {
				last = t.UTC()
			}
		}
	}
	return len(nodes), last, nil
}

// parseLB reads `show servers state` and `show stat` of one HAProxy.
func parseLB(state, stat string) ([]PoolServer, error) {
	states, err := haproxy.ParseServersState(state)
	if err != nil {
		return nil, err
	}
	admin := map[string]string{}
	for _, s := range states {
		admin[s.Backend+"/"+s.Server] = s.Admin()
	}
	var out []PoolServer
	for _, s := range haproxy.ParseStat(stat) {
		out = append(out, PoolServer{Backend: s.Backend, Server: s.Server, State: s.Status,
			Admin: admin[s.Backend+"/"+s.Server], Sessions: s.Scur, Check: s.CheckStatus})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("show stat: no servers (%s)", firstLine(stat))
	}
	return out, nil
}
