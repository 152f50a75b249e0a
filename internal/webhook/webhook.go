// Package webhook receives push events from GitHub, GitLab, Gitea and
// Forgejo and deploys the pushed branch's environment, one deploy at a time.
// Pushes that arrive while a deploy runs are coalesced per environment into
// a bounded queue, so a burst of pushes costs one more deploy, not one each.
// A deploy refused because another run holds the hosts' locks waits and
// tries again (bounded by Config.LockWait), and a newer push to its branch
// replaces it meanwhile. What a deploy does is a function the caller
// injects (the production wiring in package cli runs the deploy-code plan
// through the runner).
//
// What comes in is held to little trust even when signed: a delivery id
// seen before, or the commit an environment's newest deploy is already for,
// queues nothing (replays); a ref must be a git ref name of at most 255
// bytes whose environment Puppet accepts, and "after" a commit id; every
// value from a request or a host is quoted in the log, so a line cannot be
// forged; GET /status shows errors, servers and lock holders only to
// loopback or to a bearer of the secret.
package webhook

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Deploy deploys one environment. servers maps each server to the commit it
// reports for env afterwards (nil when the run reports none).
//
// A deploy refused because another run holds the hosts' locks, having
// changed nothing, returns an error that errors.As finds a LockHolder in
// (runner.LockHeldError is one): it is then tried again later.
type Deploy func(ctx context.Context, env string) (servers map[string]string, err error)

// LockHolder is an error saying who holds the lock that refused a deploy.
type LockHolder interface {
	error
	LockHolder() string
}

// MinSecret is the shortest shared secret accepted, in bytes. The secret is
// the HMAC key of GitHub's, Gitea's and Forgejo's signatures and GitLab's
// token itself.
const MinSecret = 16

// Config is what a Server needs; Secret and Deploy are required.
type Config struct {
	Secret   []byte
	Deploy   Deploy
	Branches []string // path.Match patterns of the branches that deploy; none means all
	Queue    int      // environments waiting at most (default 8); more → 429
	MaxBody  int64    // request body limit in bytes (default 1 MiB); more → 413
	History  int      // finished deploys kept for GET /status (default 20)
	// LockWait is how long a deploy refused by another run's lock keeps
	// trying again (default 30 minutes; negative: never).
	LockWait time.Duration
	// Replay is how long delivery ids are remembered (default 24 hours),
	// at most Deliveries of them (default 10000).
	Replay     time.Duration
	Deliveries int
	// Logf writes one log line (log.Printf by default); it must be safe for
	// concurrent use.
	Logf func(format string, args ...any)

	clock clock // the real one unless a test sets it
}

// Back-off between tries of a deploy refused by a lock: each try costs a
// connection to every host, and a run that holds the lock takes minutes.
const (
	retryFirst = 5 * time.Second
	retryMax   = 30 * time.Second
)

// Record is one deploy, queued, waiting for a lock, running or finished.
type Record struct {
	Environment string            `json:"environment"`
	Branch      string            `json:"branch"`
	Commit      string            `json:"commit"` // from the latest push's payload
	Provider    string            `json:"provider"`
	Pushes      int               `json:"pushes"` // pushes coalesced into this deploy
	Queued      time.Time         `json:"queued"`
	Start       time.Time         `json:"start,omitzero"`
	End         time.Time         `json:"end,omitzero"`
	Result      string            `json:"result"` // queued, waiting, running, ok, failed or superseded
	Error       string            `json:"error,omitempty"`
	Servers     map[string]string `json:"servers,omitempty"` // server → deployed commit
	// A deploy another run's lock refused: who holds it, the tries so far
	// and when the next one is.
	Holder string    `json:"holder,omitempty"`
	Tries  int       `json:"tries,omitempty"`
	Retry  time.Time `json:"retry,omitzero"`

	waitSince time.Time // the lock wait's budget counts from here
}

// Status is the body of GET /status. Asked from elsewhere than loopback
// without the secret, its records leave out errors, servers and lock
// holders (host names, debug-log paths) and Summary is true.
type Status struct {
	Running *Record   `json:"running"`
	Queued  []*Record `json:"queued"`
	Deploys []*Record `json:"deploys"` // finished, newest first
	Summary bool      `json:"summary,omitempty"`
}

// Server is the webhook endpoint and its deploy queue.
type Server struct {
	cfg     Config
	mu      sync.Mutex
	queue   []*Record // one per environment, oldest first
	running *Record
	done    []*Record
	latest  map[string]*Record // each environment's newest record
	seen    *deliveries
	closed  bool
	wake    chan struct{}
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Server, error) {
	if len(cfg.Secret) < MinSecret {
		return nil, fmt.Errorf("webhook: the secret is %d bytes; it must be at least %d (e.g. openssl rand -hex 24)", len(cfg.Secret), MinSecret)
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
	if cfg.LockWait == 0 {
		cfg.LockWait = 30 * time.Minute
	}
	if cfg.Replay <= 0 {
		cfg.Replay = 24 * time.Hour
	}
	if cfg.Deliveries <= 0 {
		cfg.Deliveries = 10000
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}
	return &Server{cfg: cfg, wake: make(chan struct{}, 1), latest: map[string]*Record{},
		seen: newDeliveries(cfg.Replay, cfg.Deliveries)}, nil
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
		// never the body: it is unauthenticated, or it is the forge's data;
		// the path is the sender's, so it is quoted (a newline in it would
		// write a line of its own)
		s.cfg.Logf("rejected %s %s from %s: %d %s", r.Method, excerptN(r.URL.Path, 200), r.RemoteAddr, code, why)
		answer(w, code, map[string]string{"error": why})
	}
	body, err := readBody(w, r, s.cfg.MaxBody)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		reject(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", s.cfg.MaxBody))
		return
	case err != nil:
		reject(http.StatusBadRequest, "reading the body: "+strconv.Quote(err.Error()))
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
	ids, err := deliveryIDs(r.Header)
	if err != nil {
		reject(http.StatusBadRequest, p.name+": "+err.Error())
		return
	}
	s.mu.Lock()
	replay := s.seen.seen(ids, s.cfg.clock.Now())
	s.mu.Unlock()
	if replay {
		reject(http.StatusConflict, p.name+": a replay: delivery "+excerpt(strings.Join(ids, ", "))+" was received before")
		return
	}
	// remembered once accepted: a refused delivery (429, 503) may be sent again
	accepted := func(fields map[string]string) {
		s.mu.Lock()
		s.seen.remember(ids, s.cfg.clock.Now())
		s.mu.Unlock()
		answer(w, http.StatusAccepted, fields)
	}
	if ev := r.Header.Get(p.eventHeader); ev != p.pushEvent {
		accepted(map[string]string{"status": "ignored", "reason": "event " + ev + " is not a push"})
		return
	}
	push, err := parsePush(p.name, body)
	if err != nil {
		reject(http.StatusBadRequest, p.name+": malformed push payload: "+err.Error())
		return
	}
	if why := s.skip(push); why != "" {
		accepted(map[string]string{"status": "ignored", "reason": why})
		return
	}
	env := Environment(push.Branch)
	if !puppetEnv.MatchString(env) {
		reject(http.StatusUnprocessableEntity, fmt.Sprintf("%s: branch %q deploys to environment %q, which Puppet refuses (only a-z, 0-9 and _)",
			p.name, push.Branch, env))
		return
	}
	code, state, why := s.enqueue(push)
	switch {
	case code != http.StatusAccepted:
		reject(code, why+" ("+env+")")
	case why != "":
		accepted(map[string]string{"status": state, "reason": why})
	default:
		accepted(map[string]string{"status": state, "environment": env, "commit": push.Commit})
	}
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
// the one already waiting (a newer commit replaces the older one). A push
// for the running environment queues one more deploy: the running one may
// have read the remote before this commit. A push of the commit the
// environment's newest deploy is already for (queued, waiting, running or
// finished) queues nothing: that is a replay, or a forge's redelivery. Only
// the newest counts: a branch reset to an earlier commit deploys again.
// It answers the HTTP code, the state (queued, coalesced or ignored) and
// why when it is not queued or coalesced.
func (s *Server) enqueue(p push) (code int, state, why string) {
	env := Environment(p.Branch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return http.StatusServiceUnavailable, "", "shutting down"
	}
	if last := s.latest[env]; last != nil && last.Commit == p.Commit {
		return http.StatusAccepted, "ignored", fmt.Sprintf("%s at %s has a deploy already (%s)", env, short(p.Commit), last.Result)
	}
	now := s.cfg.clock.Now()
	for _, r := range s.queue {
		if r.Environment == env {
			r.Branch, r.Commit, r.Provider = p.Branch, p.Commit, p.Provider
			r.Pushes++
			if r.Result == "waiting" {
				r.waitSince = now // a new push gets the whole wait
			}
			return http.StatusAccepted, "coalesced", ""
		}
	}
	if len(s.queue) >= s.cfg.Queue {
		return http.StatusTooManyRequests, "", fmt.Sprintf("queue full (%d environments waiting)", len(s.queue))
	}
	r := &Record{Environment: env, Branch: p.Branch, Commit: p.Commit, Provider: p.Provider,
		Pushes: 1, Queued: now, Result: "queued"}
	s.queue = append(s.queue, r)
	s.latest[env] = r
	s.prune(now)
	s.poke()
	return http.StatusAccepted, "queued", ""
}

// prune forgets the newest records of environments that finished longer
// ago than the replay window, so latest stays as small as the recent pushes.
func (s *Server) prune(now time.Time) {
	for env, r := range s.latest {
		if !r.End.IsZero() && now.Sub(r.End) > s.cfg.Replay {
			delete(s.latest, env)
		}
	}
}

// poke wakes the worker (s.mu held or not).
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// trusted says whether r may see /status's detail: it carries the secret
// as a bearer token, or it comes from loopback and not through a proxy
// (behind one every client would seem local).
func (s *Server) trusted(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(tok), s.cfg.Secret) == 1
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	show := func(r *Record) *Record { c := *r; return &c }
	if !s.trusted(r) {
		show = func(r *Record) *Record {
			return &Record{Environment: r.Environment, Branch: r.Branch, Commit: r.Commit, Provider: r.Provider,
				Pushes: r.Pushes, Queued: r.Queued, Start: r.Start, End: r.End, Result: r.Result, Tries: r.Tries, Retry: r.Retry}
		}
	}
	s.mu.Lock()
	st := Status{Queued: []*Record{}, Deploys: []*Record{}, Summary: !s.trusted(r)}
	if s.running != nil {
		st.Running = show(s.running)
	}
	for _, r := range s.queue {
		st.Queued = append(st.Queued, show(r))
	}
	for i := len(s.done) - 1; i >= 0; i-- {
		st.Deploys = append(st.Deploys, show(s.done[i]))
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
		r, wait := s.next()
		if r == nil {
			var retry <-chan time.Time
			if wait > 0 {
				retry = s.cfg.clock.After(wait)
			}
			select {
			case <-ctx.Done():
			case <-s.wake:
			case <-retry:
			}
			continue
		}
		s.run(context.WithoutCancel(ctx), r)
	}
}

// next takes the first deploy that is due; when none is, wait is the time
// until a waiting one is (0: none waits).
func (s *Server) next() (r *Record, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock.Now()
	for i, q := range s.queue {
		if d := q.Retry.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
		q.Start, q.Result, q.Retry = now, "running", time.Time{}
		s.running = q
		return q, 0
	}
	return nil, wait
}

func (s *Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, r := range s.queue {
		s.cfg.Logf("shutdown: dropped the %s deploy of %s at %s", r.Result, r.Environment, short(r.Commit))
	}
	s.queue = nil
}

func (s *Server) run(ctx context.Context, r *Record) {
	servers, err := s.safeDeploy(ctx, r.Environment)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock.Now()
	s.running = nil
	var held LockHolder
	if err != nil && errors.As(err, &held) {
		if s.waitForLock(r, held, now) {
			return
		}
	}
	r.End, r.Servers, r.Result, r.Holder = now, servers, "ok", ""
	if err != nil {
		r.Result, r.Error = "failed", err.Error()
		if held != nil && r.Tries > 0 {
			r.Error = fmt.Sprintf("another run still held the lock after %s (%d tries): %s", s.cfg.LockWait, r.Tries, err)
		}
	}
	// logged before /status shows it finished, so the two never disagree
	s.cfg.Logf("%s", logLine(r))
	s.finish(r)
}

// waitForLock puts a deploy another run's lock refused back in the queue
// to try again after a back-off, unless its wait is spent or a newer push
// for its environment queued a deploy meanwhile (which replaces it).
// s.mu is held.
func (s *Server) waitForLock(r *Record, held LockHolder, now time.Time) bool {
	if s.cfg.LockWait < 0 {
		return false
	}
	if r.Tries == 0 {
		r.waitSince = now
	}
	r.Tries++
	if now.Sub(r.waitSince) >= s.cfg.LockWait {
		return false
	}
	for _, q := range s.queue {
		if q.Environment == r.Environment {
			r.End, r.Result, r.Holder = now, "superseded", held.LockHolder()
			s.cfg.Logf("deploy %s at %s: locked by %q; superseded by the push of %s", r.Environment, short(r.Commit), r.Holder, short(q.Commit))
			s.finish(r)
			return true
		}
	}
	delay := retryFirst << min(r.Tries-1, 10)
	delay = min(delay, retryMax, r.waitSince.Add(s.cfg.LockWait).Sub(now))
	r.Result, r.Holder, r.Retry = "waiting", held.LockHolder(), now.Add(delay)
	s.cfg.Logf("deploy %s at %s: locked by %q; try %d in %s", r.Environment, short(r.Commit), r.Holder, r.Tries+1, delay)
	s.queue = append(s.queue, r)
	return true
}

// finish moves r to the history. s.mu is held.
func (s *Server) finish(r *Record) {
	s.done = append(s.done, r)
	if len(s.done) > s.cfg.History {
		s.done = s.done[len(s.done)-s.cfg.History:]
	}
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

// logLine is the one line a finished deploy gets. Its error holds hosts'
// output, quoted so that it cannot start lines or send escape codes of its
// own; the environment, commit and server names are checked or the
// operator's inventory.
func logLine(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy %s at %s (%s, %d push", r.Environment, short(r.Commit), r.Provider, r.Pushes)
	if r.Pushes != 1 {
		b.WriteString("es")
	}
	fmt.Fprintf(&b, "): %s in %s", r.Result, r.End.Sub(r.Start).Round(100*time.Millisecond))
	if r.Error != "" {
		b.WriteString(": " + strconv.Quote(r.Error))
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
		b.WriteString(sep + n + "@" + excerptIfOdd(short(r.Servers[n])))
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

// logWriter sends net/http's own complaints (TLS handshake errors) to Logf,
// with control characters escaped: some quote what a client sent.
type logWriter func(format string, args ...any)

func (l logWriter) Write(p []byte) (int, error) {
	l("%s", escapeControls(strings.TrimSuffix(string(p), "\n")))
	return len(p), nil
}

// escapeControls escapes newlines, escape codes and other control
// characters, leaving the rest of a line as it is.
func escapeControls(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if unicode.IsControl(c) {
			q := strconv.QuoteRune(c)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// excerptIfOdd quotes a value that is not plain printable text.
func excerptIfOdd(s string) string {
	if strings.IndexFunc(s, func(c rune) bool { return c <= ' ' || c == '"' || !unicode.IsPrint(c) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Serve serves on ln (TLS when certFile is set) and runs the deploy queue
// until ctx is done, then stops taking requests, lets a running deploy
// finish and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: log.New(logWriter(s.cfg.Logf), "", 0)}
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

// clock is time as the worker sees it; tests replace it to drive the lock
// back-off without sleeping.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
