// Package webhook receives push events from GitHub, GitLab, Gitea and
// Forgejo and deploys the pushed branch's environment, one deploy at a time.
// Pushes that arrive while a deploy runs are coalesced per environment into
// a bounded queue, so a burst of pushes costs one more deploy, not one each.
// What a deploy does is a function the caller injects (the production wiring
// in package cli runs the deploy-code plan through the runner).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Deploy deploys one environment. servers maps each server to the commit it
// reports for env afterwards (nil when the run reports none).
type Deploy func(ctx context.Context, env string) (servers map[string]string, err error)

// Config is what a Server needs; Secret and Deploy are required.
type Config struct {
	Secret   []byte
	Deploy   Deploy
	Branches []string // path.Match patterns of the branches that deploy; none means all
	Queue    int      // environments waiting at most (default 8); more → 429
	MaxBody  int64    // request body limit in bytes (default 1 MiB); more → 413
	History  int      // finished deploys kept for GET /status (default 20)
	// Logf writes one log line (log.Printf by default); it must be safe for
	// concurrent use.
	Logf func(format string, args ...any)
}

// Record is one deploy, queued, running or finished.
type Record struct {
	Environment string            `json:"environment"`
	Branch      string            `json:"branch"`
	Commit      string            `json:"commit"` // from the latest push's payload
	Provider    string            `json:"provider"`
	Pushes      int               `json:"pushes"` // pushes coalesced into this deploy
	Queued      time.Time         `json:"queued"`
	Start       time.Time         `json:"start,omitzero"`
	End         time.Time         `json:"end,omitzero"`
	Result      string            `json:"result"` // queued, running, ok or failed
	Error       string            `json:"error,omitempty"`
	Servers     map[string]string `json:"servers,omitempty"` // server → deployed commit
}

// Status is the body of GET /status.
type Status struct {
	Running *Record   `json:"running"`
	Queued  []*Record `json:"queued"`
	Deploys []*Record `json:"deploys"` // finished, newest first
}

// Server is the webhook endpoint and its deploy queue.
type Server struct {
	cfg     Config
	mu      sync.Mutex
	queue   []*Record // one per environment, oldest first
	running *Record
	done    []*Record
	closed  bool
	wake    chan struct{}
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	if cfg.Deploy == nil {
		return nil, errors.New("webhook: no deploy function")
	}
	for _, b := range cfg.Branches {
		if _, err := path.Match(b, ""); err != nil {
			return nil, fmt.Errorf("webhook: branch pattern %q: %w", b, err)
		}
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.History <= 0 {
		cfg.History = 20
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	return &Server{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Handler serves POST (any path) for events and GET /status.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("POST /", s.event)
	return mux
}

// answer writes a small JSON reply.
func answer(w http.ResponseWriter, code int, fields map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(fields)
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	reject := func(code int, why string) {
		// never the body: it is unauthenticated, or it is the forge's data
		s.cfg.Logf("rejected %s %s from %s: %d %s", r.Method, r.URL.Path, r.RemoteAddr, code, why)
		answer(w, code, map[string]string{"error": why})
	}
	body, err := readBody(w, r, s.cfg.MaxBody)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", s.cfg.MaxBody))
		return
	case err != nil:
		reject(http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	p := detect(r.Header)
	if p == nil {
		reject(http.StatusUnauthorized, "no GitHub, GitLab, Gitea or Forgejo event header")
		return
	}
	if err := p.verify(r.Header, body, s.cfg.Secret); err != nil {
		reject(http.StatusUnauthorized, p.name+": "+err.Error())
		return
	}
	if ev := r.Header.Get(p.eventHeader); ev != p.pushEvent {
		answer(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": "event " + ev + " is not a push"})
		return
	}
	push, err := parsePush(p.name, body)
	if err != nil {
		reject(http.StatusBadRequest, p.name+": malformed push payload: "+err.Error())
		return
	}
	if why := s.skip(push); why != "" {
		answer(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": why})
		return
	}
	code, state := s.enqueue(push)
	env := Environment(push.Branch)
	if code != http.StatusAccepted {
		reject(code, state+" ("+env+")")
		return
	}
	answer(w, code, map[string]string{"status": state, "environment": env, "commit": push.Commit})
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// skip says why a verified push does not deploy, or "".
func (s *Server) skip(p push) string {
	switch {
	case p.Branch == "":
		return "not a branch"
	case p.Deleted:
		// r10k removes the environment on the next full deploy; a one-
		// environment deploy of a missing branch could only fail
		return "branch " + p.Branch + " was deleted"
	}
	if len(s.cfg.Branches) == 0 {
		return ""
	}
	for _, pat := range s.cfg.Branches {
		if ok, _ := path.Match(pat, p.Branch); ok {
			return ""
		}
	}
	return "branch " + p.Branch + " does not deploy (--branch " + strings.Join(s.cfg.Branches, ", ") + ")"
}

// enqueue adds a deploy for the push's environment, or folds the push into
// the one already waiting. A push for the running environment queues one
// more deploy: the running one may have read the remote before this commit.
func (s *Server) enqueue(p push) (int, string) {
	env := Environment(p.Branch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return http.StatusServiceUnavailable, "shutting down"
	}
	for _, r := range s.queue {
		if r.Environment == env {
			r.Branch, r.Commit, r.Provider = p.Branch, p.Commit, p.Provider
			r.Pushes++
			return http.StatusAccepted, "coalesced"
		}
	}
	if len(s.queue) >= s.cfg.Queue {
		return http.StatusTooManyRequests, fmt.Sprintf("queue full (%d environments waiting)", len(s.queue))
	}
	s.queue = append(s.queue, &Record{Environment: env, Branch: p.Branch, Commit: p.Commit, Provider: p.Provider,
		Pushes: 1, Queued: time.Now(), Result: "queued"})
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return http.StatusAccepted, "queued"
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := Status{Queued: []*Record{}, Deploys: []*Record{}}
	if s.running != nil {
		c := *s.running
		st.Running = &c
	}
	for _, r := range s.queue {
		c := *r
		st.Queued = append(st.Queued, &c)
	}
	for i := len(s.done) - 1; i >= 0; i-- {
		st.Deploys = append(st.Deploys, s.done[i])
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// Work runs queued deploys one at a time until ctx is done. A deploy that
// is running then finishes (its context is not cancelled); the ones still
// waiting are dropped, each with a log line.
func (s *Server) Work(ctx context.Context) {
	for {
		if ctx.Err() != nil {
			s.close()
			return
		}
		r := s.next()
		if r == nil {
			select {
			case <-ctx.Done():
			case <-s.wake:
			}
			continue
		}
		s.run(context.WithoutCancel(ctx), r)
	}
}

func (s *Server) next() *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	r := s.queue[0]
	s.queue = s.queue[1:]
	r.Start, r.Result = time.Now(), "running"
	s.running = r
	return r
}

func (s *Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, r := range s.queue {
		s.cfg.Logf("shutdown: dropped the queued deploy of %s at %s", r.Environment, short(r.Commit))
	}
	s.queue = nil
}

func (s *Server) run(ctx context.Context, r *Record) {
	servers, err := s.safeDeploy(ctx, r.Environment)
	s.mu.Lock()
	r.End, r.Servers, r.Result = time.Now(), servers, "ok"
	if err != nil {
		r.Result, r.Error = "failed", err.Error()
	}
	// logged before /status shows it finished, so the two never disagree
	s.cfg.Logf("%s", logLine(r))
	s.running = nil
	s.done = append(s.done, r)
	if len(s.done) > s.cfg.History {
		s.done = s.done[len(s.done)-s.cfg.History:]
	}
	s.mu.Unlock()
}

// safeDeploy turns a panicking deploy into a failed one: the server keeps
// serving the next push.
func (s *Server) safeDeploy(ctx context.Context, env string) (servers map[string]string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("deploy panicked: %v", p)
		}
	}()
	return s.cfg.Deploy(ctx, env)
}

// logLine is the one line a finished deploy gets.
func logLine(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy %s at %s (%s, %d push", r.Environment, short(r.Commit), r.Provider, r.Pushes)
	if r.Pushes != 1 {
		b.WriteString("es")
	}
	fmt.Fprintf(&b, "): %s in %s", r.Result, r.End.Sub(r.Start).Round(100*time.Millisecond))
	if r.Error != "" {
		b.WriteString(": " + strings.ReplaceAll(r.Error, "\n", "; "))
	}
	names := make([]string, 0, len(r.Servers))
	for n := range r.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		sep := " "
		if i == 0 {
			sep = "; servers: "
		}
		b.WriteString(sep + n + "@" + short(r.Servers[n]))
	}
	return b.String()
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "?"
	}
	return sha
}

// logWriter sends net/http's own complaints (TLS handshake errors) to Logf.
type logWriter func(format string, args ...any)

func (l logWriter) Write(p []byte) (int, error) {
	l("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Serve serves on ln (TLS when certFile is set) and runs the deploy queue
// until ctx is done, then stops taking requests, lets a running deploy
// finish and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		ErrorLog: log.New(logWriter(s.cfg.Logf), "", 0)}
	// the worker stops with ctx, or when serving fails (a bad certificate)
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	worked := make(chan struct{})
	go func() { s.Work(wctx); close(worked) }()
	served := make(chan error, 1)
	go func() {
		if certFile != "" {
			served <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shut); serr != nil && err == nil {
		err = serr
	}
	stopWork()
	s.mu.Lock()
	if s.running != nil {
		s.cfg.Logf("shutdown: waiting for the running deploy of %s to finish", s.running.Environment)
	}
	s.mu.Unlock()
	<-worked
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
