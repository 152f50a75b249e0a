package webhook

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the worker's time, moved by the test. Each After the worker
// asks for is sent on waits, so the test knows the worker is idle.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC), waits: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.waits <- d
	return ch
}

// Advance moves the time on by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

// wait is the next wait the worker asks for.
func (c *fakeClock) wait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not wait for a retry")
		return 0
	}
}

// lockedErr is what runner.LockHeldError looks like to the webhook.
type lockedErr struct{ holder string }

func (e *lockedErr) Error() string {
	return fmt.Sprintf("another run holds the lock on 1 host(s); nothing was changed:\n  compile01: locked by %q", e.holder)
}
func (e *lockedErr) LockHolder() string { return e.holder }

const holder = "troupe run upgrade by op@admin01 pid 4242 since 2026-12-07T02:55:00Z"

// lockedTimes fails the first n deploys with the lock error (wrapped, as
// the command's deploy wraps the runner's), then succeeds.
func lockedTimes(n int) func(string) error {
	var mu sync.Mutex
	return func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if n == 0 {
			return nil
		}
		n--
		return fmt.Errorf("masked: %w", &lockedErr{holder})
	}
}

func TestLockedDeployWaitsRetriesAndTakesTheNewerPush(t *testing.T) {
	fc := newFakeClock()
	rec := &recorder{started: make(chan string, 10), fail: lockedTimes(3)}
	h := start(t, rec, Config{clock: fc})
	push := func(label string) map[string]string {
		body := pushBody("production", label)
		code, out := h.post(t, headers("github", "push", body, testSecret), body)
		if code != http.StatusAccepted {
			t.Fatalf("push %s: %d %v", label, code, out)
		}
		return out
	}
	push("old")
	<-rec.started
	if d := fc.wait(t); d != 5*time.Second {
		t.Errorf("first back-off %s, want 5s", d)
	}
	st := h.status(t)
	if len(st.Queued) != 1 || st.Queued[0].Result != "waiting" || st.Queued[0].Holder != holder || st.Queued[0].Tries != 1 ||
		!st.Queued[0].Retry.Equal(fc.Now().Add(5*time.Second)) || st.Running != nil || len(st.Deploys) != 0 {
		t.Fatalf("after the lock refused it: %+v", st.Queued)
	}
	if !strings.Contains(h.log.String(), `deploy production at `+commitOf("old")[:12]+`: locked by "`+holder+`"; try 2 in 5s`) {
		t.Errorf("log:\n%s", h.log)
	}

	// a newer push replaces the waiting one, which keeps its place and time
	// (the worker needs no waking for it)
	if out := push("new"); out["status"] != "coalesced" {
		t.Errorf("a push while waiting: %v", out)
	}
	if st := h.status(t); len(st.Queued) != 1 || st.Queued[0].Commit != commitOf("new") || st.Queued[0].Pushes != 2 || st.Queued[0].Result != "waiting" {
		t.Fatalf("after the newer push: %+v", st.Queued)
	}

	var waits []string
	for range 3 {
		fc.Advance(time.Minute)
		<-rec.started
		if len(rec.calls()) < 4 {
			waits = append(waits, fc.wait(t).String())
		}
	}
	st = h.waitDeploys(t, 1)
	if got := rec.calls(); len(got) != 4 {
		t.Errorf("deploys %v: want 3 refused and 1 that landed", got)
	}
	if strings.Join(waits, " ") != "10s 20s" {
		t.Errorf("back-off %v, want doubling", waits)
	}
	d := st.Deploys[0]
	if len(st.Deploys) != 1 || d.Result != "ok" || d.Commit != commitOf("new") || d.Pushes != 2 || d.Tries != 3 || d.Holder != "" || d.Error != "" {
		t.Errorf("want one deploy, of the newer commit: %+v", st.Deploys)
	}
	if strings.Contains(h.log.String(), "deploy production at "+commitOf("old")[:12]+" (") {
		t.Errorf("the older commit has a deploy of its own:\n%s", h.log)
	}
}

func TestLockWaitIsBounded(t *testing.T) {
	fc := newFakeClock()
	rec := &recorder{started: make(chan string, 10), fail: lockedTimes(100)}
	h := start(t, rec, Config{clock: fc, LockWait: time.Minute})
	body := pushBody("production", "a1")
	h.post(t, headers("gitea", "push", body, testSecret), body)
	var waits []string
	for {
		<-rec.started
		// the refused deploy either waits for a retry or is finished
		waitFor(t, "a retry or the end", func() bool { return len(fc.waits) > 0 || len(h.status(t).Deploys) == 1 })
		if len(fc.waits) == 0 {
			break
		}
		d := <-fc.waits
		waits = append(waits, d.String())
		fc.Advance(d)
	}
	st := h.status(t)
	d := st.Deploys[0]
	// 5+10+20 = 35s, then the last 25s of the minute, then no more
	if strings.Join(waits, " ") != "5s 10s 20s 25s" || len(rec.calls()) != 5 {
		t.Errorf("waits %v, %d deploys", waits, len(rec.calls()))
	}
	if d.Result != "failed" || !strings.HasPrefix(d.Error, "another run still held the lock after 1m0s (5 tries): masked: another run holds the lock") || len(st.Queued) != 0 {
		t.Errorf("%+v", d)
	}

	// with LockWait negative, a lock refusal fails at once
	rec3 := &recorder{fail: lockedTimes(1)}
	h3 := start(t, rec3, Config{clock: newFakeClock(), LockWait: -1})
	h3.post(t, headers("gitea", "push", body, testSecret), body)
	if st := h3.waitDeploys(t, 1); st.Deploys[0].Result != "failed" || st.Deploys[0].Tries != 0 ||
		!strings.HasPrefix(st.Deploys[0].Error, "masked: another run holds the lock") || len(rec3.calls()) != 1 {
		t.Errorf("no lock wait: %+v", st.Deploys[0])
	}

	// positive control: without a lock error the same deploy is not retried
	rec2 := &recorder{started: make(chan string, 10), fail: func(string) error { return context.DeadlineExceeded }}
	h2 := start(t, rec2, Config{clock: newFakeClock()})
	h2.post(t, headers("gitea", "push", body, testSecret), body)
	if st := h2.waitDeploys(t, 1); st.Deploys[0].Result != "failed" || st.Deploys[0].Tries != 0 || len(rec2.calls()) != 1 {
		t.Errorf("a failure other than the lock: %+v", st.Deploys[0])
	}
}

func TestAPushDuringARefusedRunSupersedesIt(t *testing.T) {
	fc := newFakeClock()
	rec := &recorder{started: make(chan string, 10), gate: make(chan struct{}), fail: lockedTimes(1)}
	h := start(t, rec, Config{clock: fc})
	for _, label := range []string{"old", "new"} {
		body := pushBody("production", label)
		if code, out := h.post(t, headers("github", "push", body, testSecret), body); code != http.StatusAccepted || out["status"] != "queued" {
			t.Fatalf("%s: %d %v", label, code, out)
		}
		if label == "old" {
			<-rec.started // running, and about to be refused
		}
	}
	rec.gate <- struct{}{}
	<-rec.started
	rec.gate <- struct{}{}
	st := h.waitDeploys(t, 2)
	if st.Deploys[1].Commit != commitOf("old") || st.Deploys[1].Result != "superseded" || st.Deploys[1].Holder != holder ||
		st.Deploys[0].Commit != commitOf("new") || st.Deploys[0].Result != "ok" || len(rec.calls()) != 2 {
		t.Errorf("%+v %+v, %d deploys", st.Deploys[0], st.Deploys[1], len(rec.calls()))
	}
}
