package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "s3cret-for-tests"

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "webhook", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headers are what each forge sends with a push signed with secret.
func headers(forge, event string, body []byte, secret string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	sig := hex.EncodeToString(m.Sum(nil))
	switch forge {
	case "github":
		h.Set("X-GitHub-Event", event)
		h.Set("X-Hub-Signature-256", "sha256="+sig)
	case "gitlab":
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Token", secret)
	case "gitea":
		// Gitea also sends GitHub's and Gogs' headers; its own signature counts
		h.Set("X-Gitea-Event", event)
		h.Set("X-GitHub-Event", event)
		h.Set("X-Gitea-Signature", sig)
	case "forgejo":
		h.Set("X-Forgejo-Event", event)
		h.Set("X-Gitea-Event", event)
		h.Set("X-Forgejo-Signature", sig)
		h.Set("X-Gitea-Signature", sig)
	}
	return h
}

// commitOf is a made-up commit id for a label.
func commitOf(label string) string {
	sum := sha1.Sum([]byte(label))
	return hex.EncodeToString(sum[:])
}

// pushBody is a minimal push of branch to the commit labelled label.
func pushBody(branch, label string) []byte {
	return []byte(`{"ref": "refs/heads/` + branch + `", "after": "` + commitOf(label) + `"}`)
}

var pushEvent = map[string]string{"github": "push", "gitlab": "Push Hook", "gitea": "push", "forgejo": "push"}

// recorder is an injected deploy that counts its calls; gate, when set,
// holds each deploy until the test sends on it.
type recorder struct {
	mu      sync.Mutex
	envs    []string
	done    int // deploys that returned
	started chan string
	gate    chan struct{}
	fail    func(env string) error
}

func (r *recorder) deploy(_ context.Context, env string) (map[string]string, error) {
	r.mu.Lock()
	r.envs = append(r.envs, env)
	r.mu.Unlock()
	if r.started != nil {
		r.started <- env
	}
	if r.gate != nil {
		<-r.gate
	}
	defer func() {
		r.mu.Lock()
		r.done++
		r.mu.Unlock()
	}()
	if r.fail != nil {
		if err := r.fail(env); err != nil {
			return nil, err
		}
	}
	return map[string]string{"ca01": "c0ffee" + env, "compile01": "c0ffee" + env}, nil
}

// finished says whether every deploy that started has returned.
func (r *recorder) finished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done == len(r.envs)
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.envs...)
}

// logLines collects the server's log lines; the server logs from its
// handler and worker goroutines while the test reads.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type harness struct {
	srv *Server
	url string
	log *logLines
	rec *recorder
}

func start(t *testing.T, rec *recorder, cfg Config) *harness {
	t.Helper()
	logs := &logLines{}
	cfg.Secret, cfg.Deploy, cfg.Logf = []byte(testSecret), rec.deploy, logs.logf
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Work(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		if rec.gate != nil {
			close(rec.gate)
		}
		<-done
	})
	return &harness{srv: s, url: hs.URL, log: logs, rec: rec}
}

func (h *harness) post(t *testing.T, hdr http.Header, body []byte) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest("POST", h.url+"/hook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (h *harness) status(t *testing.T) Status {
	t.Helper()
	resp, err := http.Get(h.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitDeploys polls /status until n deploys have finished.
func (h *harness) waitDeploys(t *testing.T, n int) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := h.status(t)
		if len(st.Deploys) >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d finished deploys, status: %+v", n, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEachForgeDeploysItsBranch(t *testing.T) {
	for _, tt := range []struct{ forge, env, commit string }{
		{"github", "production", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"},
		{"gitlab", "feature_ntp", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		{"gitea", "development", "bffeb74224043ba2feb48d137756c8a9331c449a"},
		{"forgejo", "staging", "bffeb74224043ba2feb48d137756c8a9331c449a"},
	} {
		t.Run(tt.forge, func(t *testing.T) {
			h := start(t, &recorder{}, Config{})
			body := fixture(t, tt.forge+"-push.json")
			code, out := h.post(t, headers(tt.forge, pushEvent[tt.forge], body, testSecret), body)
			if code != http.StatusAccepted || out["status"] != "queued" || out["environment"] != tt.env {
				t.Fatalf("%d %v", code, out)
			}
			st := h.waitDeploys(t, 1)
			if got := h.rec.calls(); len(got) != 1 || got[0] != tt.env {
				t.Errorf("deploy calls %v, want [%s]", got, tt.env)
			}
			d := st.Deploys[0]
			if d.Environment != tt.env || d.Commit != tt.commit || d.Provider != tt.forge || d.Result != "ok" ||
				d.Start.IsZero() || d.End.Before(d.Start) || d.Servers["compile01"] != "c0ffee"+tt.env {
				t.Errorf("status record %+v", d)
			}
			if !strings.Contains(h.log.String(), "deploy "+tt.env+" at "+tt.commit[:12]+" ("+tt.forge+", 1 push): ok in ") {
				t.Errorf("log:\n%s", h.log)
			}
		})
	}
}

func TestBadSignaturesRunNothing(t *testing.T) {
	h := start(t, &recorder{}, Config{})
	for forge, event := range pushEvent {
		body := fixture(t, forge+"-push.json")
		unsigned := http.Header{}
		for k, v := range headers(forge, event, body, testSecret) {
			if !strings.Contains(k, "Signature") && !strings.Contains(k, "Token") {
				unsigned[k] = v
			}
		}
		tampered := bytes.Replace(body, []byte(`"refs/heads/`), []byte(`"refs/heads/x`), 1)
		for name, tc := range map[string]struct {
			h    http.Header
			body []byte
		}{
			"unsigned":       {unsigned, body},
			"wrong secret":   {headers(forge, event, body, "not-the-secret"), body},
			"tampered body":  {headers(forge, event, body, testSecret), tampered},
			"no forge event": {http.Header{"X-Hub-Signature-256": {"sha256=00"}}, body},
		} {
			if forge == "gitlab" && name == "tampered body" {
				continue // GitLab signs nothing: its token does not cover the body
			}
			code, out := h.post(t, tc.h, tc.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d %v", forge, name, code, out)
			}
		}
	}
	// a control push, queued behind anything the refusals had queued: once
	// it is done, whatever they queued has run before it
	body := pushBody("control", "c1")
	if code, out := h.post(t, headers("github", "push", body, testSecret), body); code != http.StatusAccepted {
		t.Fatalf("control push: %d %v", code, out)
	}
	h.waitDeploys(t, 1)
	if got := h.rec.calls(); len(got) != 1 || got[0] != "control" {
		t.Errorf("deploys ran: %v, want only the control's", got)
	}
	logs := h.log.String()
	if strings.Count(logs, ": 401 ") != 15 || strings.Contains(logs, "ntp") || strings.Contains(logs, "control-repo") {
		t.Errorf("want one line per rejection, without the body:\n%s", logs)
	}
	if !strings.Contains(logs, "github: wrong X-Hub-Signature-256") || !strings.Contains(logs, "gitlab: no signature header") {
		t.Errorf("the log must say why:\n%s", logs)
	}
}

func TestOversizedAndMalformedBodies(t *testing.T) {
	h := start(t, &recorder{}, Config{})
	big := append([]byte(`{"ref":"refs/heads/production","pad":"`), bytes.Repeat([]byte("a"), 1<<20)...)
	big = append(big, `"}`...)
	if code, out := h.post(t, headers("github", "push", big, testSecret), big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB+ body: %d %v", code, out)
	}
	for _, body := range []string{`{"ref": "refs/heads/production",`, `["a list"]`, `{"after": "` + commitOf("x") + `"}`} {
		if code, out := h.post(t, headers("gitea", "push", []byte(body), testSecret), []byte(body)); code != http.StatusBadRequest {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}
	if got := h.rec.calls(); len(got) != 0 {
		t.Errorf("deploys ran: %v", got)
	}
}

func TestWhatDoesNotDeploy(t *testing.T) {
	h := start(t, &recorder{}, Config{Branches: []string{"production", "release/*"}})
	for _, tc := range []struct {
		file, event, why string
	}{
		{"github-ping.json", "ping", "event ping is not a push"},
		{"github-tag.json", "push", "not a branch"},
		{"github-delete.json", "push", "branch feature/old was deleted"},
		{"gitea-push.json", "push", "branch development does not deploy (--branch production, release/*)"},
	} {
		body := fixture(t, tc.file)
		code, out := h.post(t, headers("github", tc.event, body, testSecret), body)
		if code != http.StatusAccepted || out["status"] != "ignored" || out["reason"] != tc.why {
			t.Errorf("%s: %d %v", tc.file, code, out)
		}
	}
	body := pushBody("release/2026.12", "r1")
	if code, out := h.post(t, headers("github", "push", body, testSecret), body); code != http.StatusAccepted || out["environment"] != "release_2026_12" {
		t.Errorf("allowed by pattern: %d %v", code, out)
	}
	h.waitDeploys(t, 1)
	if got := h.rec.calls(); len(got) != 1 || got[0] != "release_2026_12" {
		t.Errorf("deploys %v", got)
	}
}

func TestBurstIsCoalescedAndBounded(t *testing.T) {
	rec := &recorder{started: make(chan string, 10), gate: make(chan struct{})}
	h := start(t, rec, Config{Queue: 2})
	push := func(branch, label string) (int, map[string]string) {
		body := pushBody(branch, label)
		return h.post(t, headers("github", "push", body, testSecret), body)
	}
	if code, _ := push("production", "p1"); code != http.StatusAccepted {
		t.Fatal(code)
	}
	<-rec.started // production p1 is running and holds the worker
	var states []string
	for _, sha := range []string{"p2", "p3", "p4", "p5"} {
		_, out := push("production", sha)
		states = append(states, out["status"])
	}
	_, out := push("development", "d1")
	states = append(states, out["status"])
	if strings.Join(states, " ") != "queued coalesced coalesced coalesced queued" {
		t.Errorf("states %v", states)
	}
	if code, out := push("feature", "f1"); code != http.StatusTooManyRequests {
		t.Errorf("third environment past a queue of 2: %d %v", code, out)
	}
	st := h.status(t)
	if st.Running == nil || st.Running.Commit != commitOf("p1") || len(st.Queued) != 2 || st.Queued[0].Commit != commitOf("p5") || st.Queued[0].Pushes != 4 {
		t.Errorf("status during the deploy: %+v", st)
	}
	for range 3 {
		rec.gate <- struct{}{}
	}
	st = h.waitDeploys(t, 3)
	if got := strings.Join(rec.calls(), " "); got != "production production development" {
		t.Errorf("deploys %q, want one more production for the four pushes", got)
	}
	if st.Deploys[1].Commit != commitOf("p5") || st.Deploys[1].Pushes != 4 || st.Deploys[0].Environment != "development" {
		t.Errorf("finished, newest first: %+v %+v", st.Deploys[0], st.Deploys[1])
	}
	if !strings.Contains(h.log.String(), "deploy production at "+commitOf("p5")[:12]+" (github, 4 pushes): ok") {
		t.Errorf("log:\n%s", h.log)
	}
}

func TestFailingAndPanickingDeploysKeepServing(t *testing.T) {
	rec := &recorder{fail: func(env string) error {
		switch env {
		case "boom":
			panic("r10k exploded")
		case "bad":
			return errors.New("run failed at step servers/code")
		}
		return nil
	}}
	h := start(t, rec, Config{})
	for _, b := range []string{"boom", "bad", "production"} {
		body := pushBody(b, "a1")
		if code, out := h.post(t, headers("gitea", "push", body, testSecret), body); code != http.StatusAccepted {
			t.Fatalf("%s: %d %v", b, code, out)
		}
	}
	st := h.waitDeploys(t, 3)
	var got []string
	for _, d := range st.Deploys {
		got = append(got, d.Environment+"="+d.Result+":"+d.Error)
	}
	if strings.Join(got, " ") != "production=ok: bad=failed:run failed at step servers/code boom=failed:deploy panicked: r10k exploded" {
		t.Errorf("%v", got)
	}
	if !strings.Contains(h.log.String(), `: failed in 0s: "run failed at step servers/code"`) {
		t.Errorf("want the error quoted in the log:\n%s", h.log)
	}
}

// serve runs Serve on a loopback port until ctx is done; served receives
// what it returns.
func serve(t *testing.T, ctx context.Context, cfg Config, certFile, keyFile string) (*Server, string, chan error) {
	t.Helper()
	cfg.Secret = []byte(testSecret)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, certFile, keyFile) }()
	return s, ln.Addr().String(), served
}

func TestShutdownLetsTheRunningDeployFinish(t *testing.T) {
	rec := &recorder{started: make(chan string, 4), gate: make(chan struct{})}
	logs := &logLines{}
	ctx, cancel := context.WithCancel(context.Background())
	s, addr, served := serve(t, ctx, Config{Deploy: rec.deploy, Logf: logs.logf}, "", "")
	h := &harness{srv: s, url: "http://" + addr, log: logs, rec: rec}
	for _, b := range []string{"production", "development"} {
		body := pushBody(b, "a1")
		h.post(t, headers("github", "push", body, testSecret), body)
		if b == "production" {
			<-rec.started
		}
	}
	// Serve must not return before the deploy it waits for has: whether the
	// deploy had returned is read the moment Serve does
	returnedEarly := make(chan bool, 1)
	result := make(chan error, 1)
	go func() {
		err := <-served
		returnedEarly <- !rec.finished()
		result <- err
	}()
	cancel() // what SIGTERM does in the command
	waitFor(t, "the shutdown to wait for the deploy", func() bool {
		return strings.Contains(logs.String(), "waiting for the running deploy of production")
	})
	if _, err := http.Get(h.url + "/status"); err == nil {
		t.Error("still accepting requests after shutdown began")
	}
	close(rec.gate)
	select {
	case early := <-returnedEarly:
		if early {
			t.Fatal("Serve returned while a deploy ran")
		}
		if err := <-result; err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the deploy finished")
	}
	if got := rec.calls(); len(got) != 1 {
		t.Errorf("only the running deploy finishes; queued ones are dropped: %v", got)
	}
	out := logs.String()
	for _, want := range []string{"waiting for the running deploy of production", "deploy production at " + commitOf("a1")[:12] + " (github, 1 push): ok",
		"dropped the queued deploy of development"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// waitFor polls cond until it holds (30 seconds at most: a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestNewRefusesAShortSecret(t *testing.T) {
	deploy := (&recorder{}).deploy
	for _, secret := range []string{"", "x", strings.Repeat("s", MinSecret-1)} {
		if _, err := New(Config{Secret: []byte(secret), Deploy: deploy}); err == nil || !strings.Contains(err.Error(), "at least 16") {
			t.Errorf("a %d-byte secret: %v", len(secret), err)
		}
	}
	if _, err := New(Config{Secret: []byte(strings.Repeat("s", MinSecret)), Deploy: deploy}); err != nil {
		t.Errorf("a %d-byte secret refused: %v", MinSecret, err)
	}
	if _, err := New(Config{Secret: []byte(testSecret), Deploy: deploy, Branches: []string{"["}}); err == nil {
		t.Error("bad branch pattern accepted")
	}
}
