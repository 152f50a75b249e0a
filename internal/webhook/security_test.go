package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// deliveryHeader is the header each forge names a delivery with.
var deliveryHeader = map[string]string{"github": "X-GitHub-Delivery", "gitea": "X-Gitea-Delivery", "forgejo": "X-Forgejo-Delivery", "gitlab": "X-Gitlab-Event-UUID"}

func TestAReplayedDeliveryIsRefused(t *testing.T) {
	for forge, header := range deliveryHeader {
		t.Run(forge, func(t *testing.T) {
			h := start(t, &recorder{}, Config{})
			body := pushBody("production", forge+"1")
			hdr := headers(forge, pushEvent[forge], body, testSecret)
			hdr.Set(header, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
			if code, out := h.post(t, hdr, body); code != http.StatusAccepted || out["status"] != "queued" {
				t.Fatalf("first delivery: %d %v", code, out)
			}
			h.waitDeploys(t, 1)
			// the same request again, byte for byte
			if code, out := h.post(t, hdr, body); code != http.StatusConflict || !strings.Contains(out["error"], "a replay") {
				t.Errorf("replay: %d %v", code, out)
			}
			// a new delivery of a new commit deploys (positive control)
			body2 := pushBody("production", forge+"2")
			hdr2 := headers(forge, pushEvent[forge], body2, testSecret)
			hdr2.Set(header, "8a5b1c0e-cc78-11e3-81ab-4c9367dc0958")
			if code, out := h.post(t, hdr2, body2); code != http.StatusAccepted || out["status"] != "queued" {
				t.Errorf("a new delivery: %d %v", code, out)
			}
			h.waitDeploys(t, 2)
			if got := h.rec.calls(); len(got) != 2 {
				t.Errorf("deploys %v, want 2", got)
			}
			if !strings.Contains(h.log.String(), ": 409 "+forge+": a replay: delivery") {
				t.Errorf("log:\n%s", h.log)
			}
		})
	}
}

// The delivery header is not signed: a replay may carry a fresh id or
// none. The same commit for the same environment is then not queued again,
// unless the branch has moved on since (a reset to an earlier commit).
func TestTheSameCommitIsNotQueuedTwice(t *testing.T) {
	rec := &recorder{started: make(chan string, 10), gate: make(chan struct{})}
	h := start(t, rec, Config{})
	post := func(label, id string) map[string]string {
		body := pushBody("production", label)
		hdr := headers("github", "push", body, testSecret)
		if id != "" {
			hdr.Set("X-GitHub-Delivery", id)
		}
		code, out := h.post(t, hdr, body)
		if code != http.StatusAccepted {
			t.Fatalf("%s %s: %d %v", label, id, code, out)
		}
		return out
	}
	post("a", "id-1")
	<-rec.started
	for _, id := range []string{"", "id-2"} { // while it runs
		if out := post("a", id); out["status"] != "ignored" || !strings.Contains(out["reason"], "has a deploy already (running)") {
			t.Errorf("the running commit again (id %q): %v", id, out)
		}
	}
	rec.gate <- struct{}{}
	h.waitDeploys(t, 1)
	if out := post("a", "id-3"); out["status"] != "ignored" || !strings.Contains(out["reason"], "(ok)") {
		t.Errorf("the deployed commit again: %v", out)
	}
	for _, label := range []string{"b", "a"} { // on to b, then reset back to a
		if out := post(label, "id-"+label); out["status"] != "queued" {
			t.Errorf("%s: %v", label, out)
		}
		<-rec.started
		rec.gate <- struct{}{}
	}
	st := h.waitDeploys(t, 3)
	if got := st.Deploys[0].Commit + " " + st.Deploys[1].Commit; got != commitOf("a")+" "+commitOf("b") || len(rec.calls()) != 3 {
		t.Errorf("deploys %v; newest first %s", rec.calls(), got)
	}
}

func TestDeliveryMemoryIsBounded(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	d := newDeliveries(time.Hour, 3)
	for i := range 10 {
		d.remember([]string{fmt.Sprint("id-", i)}, now)
	}
	if len(d.at) != 3 || len(d.order) != 3 {
		t.Errorf("%d ids kept, want 3", len(d.at))
	}
	if d.seen([]string{"id-6"}, now) || !d.seen([]string{"id-7"}, now) || !d.seen([]string{"x", "id-9"}, now) {
		t.Error("want the newest 3 remembered, the older forgotten")
	}
	if d.seen([]string{"id-9"}, now.Add(time.Hour+time.Second)) || len(d.at) != 0 {
		t.Errorf("after the window: %v", d.at)
	}
}

func TestPushesAreValidated(t *testing.T) {
	h := start(t, &recorder{}, Config{})
	after := commitOf("v")
	for _, tc := range []struct {
		ref, after string
		code       int
	}{
		{"refs/heads/" + strings.Repeat("b", 600<<10), after, http.StatusBadRequest},
		{"refs/heads/" + strings.Repeat("b", 245), after, http.StatusBadRequest}, // 256 bytes in all
		{"refs/heads/a..b", after, http.StatusBadRequest},
		{"refs/heads/x.lock", after, http.StatusBadRequest},
		{"refs/heads/.hidden", after, http.StatusBadRequest},
		{"refs/heads/with space", after, http.StatusBadRequest},
		{"refs/heads/x\n2026/12/07 03:00:00 deploy production: ok", after, http.StatusBadRequest},
		{"refs/heads/x\x1b[2J", after, http.StatusBadRequest},
		{"refs/heads/a@{1}", after, http.StatusBadRequest},
		{"refs/heads/trailing/", after, http.StatusBadRequest},
		{"refs/heads/production", "abc", http.StatusBadRequest},
		{"refs/heads/production", after + "\n2026/12/07 fake", http.StatusBadRequest},
		{"refs/heads/production", strings.ToUpper(after), http.StatusBadRequest},
		{"refs/heads/Feature-X", after, http.StatusUnprocessableEntity},
		// positive controls: the longest ref, a SHA-256 commit
		{"refs/heads/" + strings.Repeat("b", 244), after, http.StatusAccepted},
		{"refs/heads/feature/ntp-2", commitOf("w") + commitOf("w")[:24], http.StatusAccepted},
	} {
		b, _ := json.Marshal(map[string]string{"ref": tc.ref, "after": tc.after})
		code, out := h.post(t, headers("github", "push", b, testSecret), b)
		if code != tc.code {
			t.Errorf("ref %.40q after %.50q: %d %v, want %d", tc.ref, tc.after, code, out, tc.code)
		}
		if len(out["error"]) > 300 {
			t.Errorf("a %d-byte answer", len(out["error"]))
		}
	}
	h.waitDeploys(t, 2)
	if got := h.rec.calls(); len(got) != 2 || got[0] != strings.Repeat("b", 244) || got[1] != "feature_ntp_2" {
		t.Errorf("deploys %.60q", got)
	}
	h.log.mu.Lock()
	lines := append([]string(nil), h.log.lines...)
	h.log.mu.Unlock()
	for _, line := range lines {
		if len(line) > 400 || strings.ContainsAny(line, "\n\x1b") {
			t.Errorf("log line %.100q (%d bytes)", line, len(line))
		}
	}
	if !strings.Contains(h.log.String(), `branch "Feature-X" deploys to environment "Feature_X", which Puppet refuses`) {
		t.Errorf("log:\n%s", h.log)
	}
}

// Each log line is one line, whatever the request or the hosts said.
func TestLogLinesCannotBeForged(t *testing.T) {
	rec := &recorder{fail: func(env string) error {
		return fmt.Errorf("step servers/code failed on compile01: r10k: \x1b[31mERROR\x1b[0m\n2026/12/07 03:00:00 deploy production at 0d1a26e67d8f (github, 1 push): ok")
	}}
	h := start(t, rec, Config{})
	// unsigned, with a newline (and an escape code) in the path
	req, _ := http.NewRequest("POST", h.url+"/x%0A2026/12/07%2003:00:00%20deploy%20production:%20ok%1B[2J", strings.NewReader("{}"))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body := pushBody("production", "f1")
	h.post(t, headers("github", "push", body, testSecret), body)
	h.waitDeploys(t, 1)
	logWriter(h.log.logf).Write([]byte("http: TLS handshake error from 192.0.2.1:1: \x1b[2J\nforged line\n"))

	h.log.mu.Lock()
	lines := append([]string(nil), h.log.lines...)
	h.log.mu.Unlock()
	if len(lines) != 3 {
		t.Fatalf("want 3 log lines (the rejection, the deploy, net/http's), got %q", lines)
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r\x1b") {
			t.Errorf("a log line with a newline or escape code: %q", l)
		}
	}
	for i, want := range []string{`rejected POST "/x\n2026/12/07 03:00:00 deploy production: ok\x1b[2J" from `,
		`: failed in 0s: "step servers/code failed on compile01: r10k: \x1b[31mERROR\x1b[0m\n2026/12/07`,
		`http: TLS handshake error from 192.0.2.1:1: \x1b[2J\nforged line`} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
	}
}

func TestStatusDetailNeedsTheSecretOrLoopback(t *testing.T) {
	rec := &recorder{fail: func(string) error {
		return fmt.Errorf("failed on compile01 (debug log: /var/lib/troupe/state/logs/x.log)")
	}}
	h := start(t, rec, Config{})
	body := pushBody("production", "s1")
	h.post(t, headers("github", "push", body, testSecret), body)
	h.waitDeploys(t, 1) // from loopback

	get := func(remote string, hdr map[string]string) Status {
		req := httptest.NewRequest("GET", "/status", nil)
		req.RemoteAddr = remote
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		var st Status
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || len(st.Deploys) != 1 {
			t.Fatalf("%s %v: %v %s", remote, hdr, err, w.Body)
		}
		if detail := st.Deploys[0].Servers != nil || st.Deploys[0].Error != ""; detail == st.Summary {
			t.Errorf("%s %v: summary %v, but the record %+v", remote, hdr, st.Summary, st.Deploys[0])
		}
		if st.Summary && strings.Contains(fmt.Sprint(st), "compile01") {
			t.Errorf("host names in a summary: %+v", st.Deploys[0])
		}
		return st
	}
	for _, tc := range []struct {
		remote string
		hdr    map[string]string
		detail bool
	}{
		{"203.0.113.5:40000", nil, false},
		{"203.0.113.5:40000", map[string]string{"Authorization": "Bearer not-the-secret-at-all"}, false},
		{"203.0.113.5:40000", map[string]string{"Authorization": "Bearer " + testSecret}, true},
		{"127.0.0.1:40000", nil, true},
		{"[::1]:40000", nil, true},
		{"127.0.0.1:40000", map[string]string{"X-Forwarded-For": "203.0.113.5"}, false}, // a proxy on loopback
		{"127.0.0.1:40000", map[string]string{"Authorization": "Bearer wrong"}, false},
	} {
		st := get(tc.remote, tc.hdr)
		if st.Summary == tc.detail || st.Deploys[0].Commit != commitOf("s1") || st.Deploys[0].Result != "failed" {
			t.Errorf("%s %v: want detail %v, got %+v", tc.remote, tc.hdr, tc.detail, st.Deploys[0])
		}
	}
}
