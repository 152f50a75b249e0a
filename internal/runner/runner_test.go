package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/transport"
)

// These tests drive the runner against "hosts" that are directories on this
// machine: each host's connection is the real local transport with $H set
// to its own directory and the host lock moved into it. A fake only in
// where the host lives; every command really runs.

type hostConn struct {
	transport.Conn
	dir string
}

func (c hostConn) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	cmd.Command = "H=" + c.dir + "; export H; " + cmd.Command
	return c.Conn.Run(ctx, cmd)
}

type recorder struct {
	mu     sync.Mutex
	events []report.Event
}

func (r *recorder) Emit(e report.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
func (r *recorder) Close() error        { return nil }

// results maps "step host" to the status (and reason) reported.
func (r *recorder) results() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, e := range r.events {
		if e.Kind == report.HostResult {
			out[e.Step+" "+e.Host] = strings.TrimSpace(string(e.Status) + " " + e.Reason)
		}
	}
	return out
}

func (r *recorder) kinds(k report.Kind) []report.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []report.Event
	for _, e := range r.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

type fixture struct {
	t     *testing.T
	root  string
	plan  *plan.Plan
	inv   *inventory.Inventory
	state string
}

func setup(t *testing.T, planYAML string, hosts ...string) *fixture {
	t.Helper()
	return setupFiles(t, map[string]string{"plans/p.yaml": planYAML}, hosts...)
}

// setupFiles is setup with more content files (roles, sub-plans) beside
// plans/p.yaml, the plan it loads.
func setupFiles(t *testing.T, files map[string]string, hosts ...string) *fixture {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "content", "plans"), 0o755)
	os.MkdirAll(filepath.Join(root, "content", "roles"), 0o755)
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(root, "content", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &plan.Loader{FS: os.DirFS(filepath.Join(root, "content")), Actions: testActions{}, Funcs: render.Funcs()}
	p, err := l.Load("p")
	if err != nil {
		t.Fatalf("load plan: %v", err)
	}
	var targets, lbs []string
	for _, h := range hosts {
		targets = append(targets, fmt.Sprintf("{name: %s, vars: {troupe_lock: %s}}", h, filepath.Join(root, "hosts", h, "troupe.lock")))
		if strings.HasPrefix(h, "lb") {
			lbs = append(lbs, h)
		}
	}
	// every host is in web; hosts named lb* are the load balancers too
	inv := "version: 1\ngroups:\n  web:\n    targets: [" + strings.Join(targets, ", ") + "]\n"
	if len(lbs) > 0 {
		inv += "  loadbalancer:\n    targets: [" + strings.Join(lbs, ", ") + "]\n"
	}
	i, err := inventory.LoadBytes("inv.yaml", []byte(inv))
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	for _, h := range hosts {
		os.MkdirAll(filepath.Join(root, "hosts", h), 0o755)
	}
	return &fixture{t: t, root: root, plan: p, inv: i, state: filepath.Join(root, "state")}
}

func (f *fixture) hostDir(h string) string { return filepath.Join(f.root, "hosts", h) }

func (f *fixture) run(ctx context.Context, mod func(*Options)) (*recorder, *Summary, error) {
	rec := &recorder{}
	o := Options{
		Plan: f.plan, Inventory: f.inv, Params: map[string]any{}, StateDir: f.state,
		Reporter: rec, Redactor: &secret.Redactor{},
		Dial: func(_ context.Context, cfg transport.Config) (transport.Conn, error) {
			return hostConn{Conn: transport.Local(), dir: f.hostDir(cfg.Host)}, nil
		},
	}
	if mod != nil {
		mod(&o)
	}
	sum, err := Run(ctx, o)
	return rec, sum, err
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestControls(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: hello
    targets: web
    command: "echo hello-{{ .host.name }}"
    register: hello
    changed_when: "{{ false }}"
  - id: use-register
    targets: web
    command: "echo '{{ .registered.hello.stdout | trim }}' > $H/greeting"
  - id: only-h1
    targets: web
    when: '{{ eq .host.name "h1" }}'
    command: "touch $H/only"
  - id: creates
    targets: web
    creates: "/"
    command: "touch $H/never"
  - id: unless
    targets: web
    unless: "true"
    command: "touch $H/never"
  - id: tolerated
    targets: web
    command: "exit 3"
    failed_when: "{{ ne .result.rc 3 }}"
  - id: ignored
    targets: web
    command: "exit 1"
    ignore_errors: true
`, "h1", "h2")
	rec, sum, err := f.run(context.Background(), nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	want := map[string]string{
		"hello h1":        "ok",
		"use-register h1": "changed",
		"only-h1 h1":      "changed",
		"only-h1 h2":      "skipped when is false",
		"creates h2":      "skipped / exists",
		"unless h1":       "skipped unless: true exited 0",
		"tolerated h2":    "changed",
		"ignored h1":      "changed",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	b, _ := os.ReadFile(filepath.Join(f.hostDir("h2"), "greeting"))
	if strings.TrimSpace(string(b)) != "hello-h2" {
		t.Errorf("registered stdout not rendered per host: %q", b)
	}
	if exists(filepath.Join(f.hostDir("h2"), "only")) || exists(filepath.Join(f.hostDir("h1"), "never")) {
		t.Error("a skipped step ran")
	}
	if len(rec.kinds(report.Warning)) != 2 {
		t.Errorf("want an ignored-error warning per host, got %v", rec.kinds(report.Warning))
	}
	if sum.Counts[report.Failed] != 0 {
		t.Errorf("counts: %v", sum.Counts)
	}
}

func TestSerialStopsAtMaxFailures(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: roll
    targets: web
    serial: 1
    steps:
      - id: work
        command: '[ "$(basename $H)" != h2 ] && touch $H/done'
`, "h1", "h2", "h3")
	rec, _, err := f.run(context.Background(), nil)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("want ErrFailed, got %v", err)
	}
	if !exists(filepath.Join(f.hostDir("h1"), "done")) {
		t.Error("batch 1 did not run")
	}
	if exists(filepath.Join(f.hostDir("h3"), "done")) || rec.results()["roll/work h3"] != "" {
		t.Error("batch 3 ran after batch 2 failed with max_failures 0")
	}
	if !strings.Contains(err.Error(), "roll/work") || !strings.Contains(err.Error(), "h2") {
		t.Errorf("error should name the step and host: %v", err)
	}
}

func TestMaxFailuresPercentLetsTheRestGoOn(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: roll
    targets: web
    serial: 1
    max_failures: 34%
    steps:
      - id: work
        command: '[ "$(basename $H)" != h1 ] && touch $H/done'
  - id: after
    targets: web
    command: touch $H/after
`, "h1", "h2", "h3")
	_, sum, err := f.run(context.Background(), nil)
	if !errors.Is(err, ErrFailed) { // a host failed: the run says so, but finished
		t.Fatalf("want ErrFailed, got %v", err)
	}
	if !exists(filepath.Join(f.hostDir("h3"), "after")) || exists(filepath.Join(f.hostDir("h1"), "after")) {
		t.Error("the healthy hosts should finish and the failed one stay out")
	}
	if len(sum.Failed) != 1 {
		t.Errorf("failed: %v", sum.Failed)
	}
}

func TestResumeSkipsWhatEachHostCompleted(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: count
    targets: web
    command: echo x >> $H/count
    register: c
  - id: flaky
    targets: web
    command: test ! -e $H/break
  - id: last
    targets: web
    command: echo "count said rc={{ .registered.c.rc }}" > $H/last
`, "h1", "h2")
	os.WriteFile(filepath.Join(f.hostDir("h2"), "break"), nil, 0o644)
	if _, _, err := f.run(context.Background(), nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("first run: want ErrFailed, got %v", err)
	}
	os.Remove(filepath.Join(f.hostDir("h2"), "break"))
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Resume = true })
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	got := rec.results()
	for _, k := range []string{"count h1", "count h2", "flaky h1"} {
		if !strings.HasPrefix(got[k], "skipped done in the previous run") {
			t.Errorf("%s = %q, want skipped as done", k, got[k])
		}
	}
	if got["flaky h2"] != "changed" || got["last h1"] != "changed" {
		t.Errorf("resume must run from the first incomplete step: %v", got)
	}
	for _, h := range []string{"h1", "h2"} {
		b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "count"))
		if string(b) != "x\n" {
			t.Errorf("%s ran a completed step again: %q", h, b)
		}
		// a skipped step's registered value comes back from the journal
		if b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "last")); string(b) != "count said rc=0\n" {
			t.Errorf("%s: registered value after resume: %q", h, b)
		}
	}
	if _, _, err := f.run(context.Background(), func(o *Options) { o.Resume = true }); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume after success: %v", err)
	}
}

func TestStartAt(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: one, targets: web, command: touch $H/one}
  - id: block
    targets: web
    steps:
      - {id: first, command: touch $H/first}
      - {id: second, command: "touch $H/second; test ! -e $H/break"}
  - {id: two, targets: web, command: touch $H/two}
`, "h1")
	h := f.hostDir("h1")
	if _, _, err := f.run(context.Background(), func(o *Options) { o.StartAt = "two" }); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(h, "one")) || !exists(filepath.Join(h, "two")) {
		t.Error("--start-at two must skip one and run two")
	}
	os.Remove(filepath.Join(h, "two"))

	// an unknown id is refused before any host is dialled or the journal touched
	os.RemoveAll(f.state)
	dialled := false
	_, _, err := f.run(context.Background(), func(o *Options) {
		o.StartAt = "secnod"
		o.Dial = func(context.Context, transport.Config) (transport.Conn, error) {
			dialled = true
			return nil, errors.New("must not dial")
		}
	})
	var bad *InputError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), `no step "secnod"`) || !strings.Contains(err.Error(), "nearest ids: block/second") {
		t.Errorf("unknown --start-at: want an InputError naming the nearest ids, got %v", err)
	}
	if dialled || exists(f.state) {
		t.Errorf("unknown --start-at: dialled %v, state written %v", dialled, exists(f.state))
	}

	// a block id starts at the block's first step; second fails
	os.WriteFile(filepath.Join(h, "break"), nil, 0o644)
	rec, _, err := f.run(context.Background(), func(o *Options) { o.StartAt = "block" })
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("--start-at block: want the failure of block/second, got %v", err)
	}
	if exists(filepath.Join(h, "one")) || !exists(filepath.Join(h, "first")) || !exists(filepath.Join(h, "second")) {
		t.Errorf("--start-at block must skip one and run block/first: %v", rec.results())
	}

	// the steps --start-at skipped were never done: --resume runs them
	os.Remove(filepath.Join(h, "break"))
	rec, _, err = f.run(context.Background(), func(o *Options) { o.Resume = true })
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := rec.results(); got["one h1"] != "changed" || got["two h1"] != "changed" {
		t.Errorf("resume after --start-at must run what was skipped: %v", got)
	}
}

func TestLockRefusesASecondRun(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: one, targets: web, command: touch $H/one}
`, "h1", "h2")
	os.Mkdir(filepath.Join(f.hostDir("h2"), "troupe.lock"), 0o700)
	os.WriteFile(filepath.Join(f.hostDir("h2"), "troupe.lock", "owner"), []byte("troupe run other by alice@laptop\n"), 0o644)
	_, _, err := f.run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "alice@laptop") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("want a lock refusal naming the holder, got %v", err)
	}
	if exists(filepath.Join(f.hostDir("h1"), "one")) {
		t.Error("a step ran although a host was locked")
	}
	if exists(filepath.Join(f.hostDir("h1"), "troupe.lock")) {
		t.Error("the lock taken on h1 was not released")
	}
	// a stale lock (no heartbeat for longer than lockStale) is taken over
	old := time.Now().Add(-2 * lockStale)
	os.Chtimes(filepath.Join(f.hostDir("h2"), "troupe.lock", "owner"), old, old)
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatalf("stale lock: %v", err)
	}
}

func TestNoopChangesNothing(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: cmd, targets: web, command: touch $H/one}
  - id: file
    targets: web
    upload: {content: "hello\n", dest: "{{ .host.name }}-never"}
`, "h1")
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Noop = true })
	if err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(f.hostDir("h1"), "one")) {
		t.Error("noop ran a command")
	}
	would := rec.kinds(report.WouldRun)
	if len(would) != 1 || !strings.Contains(would[0].Text, "touch $H/one") {
		t.Errorf("would_run events: %v", would)
	}
	ww := rec.kinds(report.WouldWrite)
	if len(ww) != 1 || !strings.Contains(ww[0].Diff, "+hello") {
		t.Errorf("would_write events: %v", ww)
	}
}

func TestInterruptKillsRunningCommands(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: slow, targets: web, command: "echo $$ > $H/pid; sleep 20; touch $H/late"}
  - {id: next, targets: web, command: "touch $H/next"}
`, "h1")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := f.run(ctx, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("interrupt took %s", time.Since(start))
	}
	// The slow command's shell is gone (so it can never touch "late"):
	// waited for, not slept on.
	b, err := os.ReadFile(filepath.Join(f.hostDir("h1"), "pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid == 0 {
		t.Fatalf("the slow command did not start: %v", err)
	}
	gone := func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
	for deadline := time.Now().Add(10 * time.Second); !gone() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if !gone() {
		t.Errorf("the interrupted command (pid %d) still runs", pid)
	}
	if exists(filepath.Join(f.hostDir("h1"), "next")) || exists(filepath.Join(f.hostDir("h1"), "late")) {
		t.Error("work went on after the interrupt")
	}
	if exists(filepath.Join(f.hostDir("h1"), "troupe.lock")) {
		t.Error("lock left behind after an interrupt")
	}
}

func TestRunOnceAndRetries(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: once
    targets: web
    run_once: true
    command: echo ran-on-$(basename $H)
    register: once
  - id: see
    targets: web
    command: "echo '{{ .registered.once.stdout | trim }}' > $H/seen"
  - id: flaky
    targets: web
    retries: 3
    delay: 10ms
    command: 'echo x >> $H/tries; [ $(wc -l < $H/tries) -ge 3 ]'
`, "h1", "h2")
	rec, _, err := f.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.results()["once h2"]; got != "skipped run_once: ran on h1" {
		t.Errorf("once h2 = %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(f.hostDir("h2"), "seen"))
	if strings.TrimSpace(string(b)) != "ran-on-h1" {
		t.Errorf("run_once result not shared: %q", b)
	}
	b, _ = os.ReadFile(filepath.Join(f.hostDir("h1"), "tries"))
	if strings.Count(string(b), "x") != 3 {
		t.Errorf("retries: %q", b)
	}
}

// A block's when picks its hosts before the first batch: hosts where it is
// false take no place in a rolling batch and none of its steps run there;
// serial may come from a param.
func TestBlockWhenAndTemplatedSerial(t *testing.T) {
	f := setup(t, `name: p
params:
  batch: {type: string, default: "2"}
steps:
  - id: facts
    targets: web
    command: 'if [ "$(basename $H)" = h2 ]; then echo current; else echo old; fi'
    register: ver
    changed_when: "{{ false }}"
  - id: roll
    targets: web
    serial: "{{ .params.batch }}"
    when: '{{ eq (trim .registered.ver.stdout) "old" }}'
    steps:
      - id: work
        command: 'echo "$(date +%s%N)" > $H/worked'
`, "h1", "h2", "h3", "h4")
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"batch": "2"} })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	if got["roll h2"] != "skipped when is false" || got["roll/work h2"] != "" {
		t.Errorf("h2 (already current): roll %q, work %q", got["roll h2"], got["roll/work h2"])
	}
	for _, h := range []string{"h1", "h3", "h4"} {
		if got["roll/work "+h] != "changed" {
			t.Errorf("%s: work %q", h, got["roll/work "+h])
		}
	}
	// The when header over all four, then batches of 2 over the 3 hosts
	// that need it: h1 and h3, then h4.
	var batches [][]string
	for _, e := range rec.kinds(report.StepStart) {
		if e.Step == "roll" {
			batches = append(batches, e.Hosts)
		}
	}
	if len(batches) != 3 || strings.Join(batches[1], " ") != "h1 h3" || strings.Join(batches[2], " ") != "h4" {
		t.Errorf("batches: %v", batches)
	}
}

// delegate_to runs the action on other hosts in the target's scope, for a
// step or for every step of a block, and --limit does not narrow it.
func TestDelegateTo(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: one
    targets: h1
    delegate_to: h2,h3
    command: 'echo "for {{ .host.name }}" >> $H/by'
  - id: block
    targets: h1
    delegate_to: h3
    steps:
      - id: inner
        command: 'echo "block for {{ .host.name }}" >> $H/by'
`, "h1", "h2", "h3")
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Limit = "h1" })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	read := func(h string) string { b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "by")); return string(b) }
	if read("h1") != "" || read("h2") != "for h1\n" || read("h3") != "for h1\nblock for h1\n" {
		t.Errorf("h1 %q, h2 %q, h3 %q", read("h1"), read("h2"), read("h3"))
	}
	if got := rec.results()["one h1"]; !strings.HasPrefix(got, "changed h2: ") || !strings.Contains(got, "; h3: ") {
		t.Errorf("one h1 = %q", got)
	}
}

// A top-level block without targets (a sub-plan include) runs its steps on
// the targets they name; it used to run nothing, silently.
func TestTopLevelBlockWithoutTargets(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: outer
    steps:
      - id: a
        targets: h1
        command: 'echo a >> $H/by'
      - id: b
        targets: h2
        command: 'echo b >> $H/by'
`, "h1", "h2")
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatalf("run: %v", err)
	}
	read := func(h string) string { b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "by")); return string(b) }
	if read("h1") != "a\n" || read("h2") != "b\n" {
		t.Errorf("h1 %q, h2 %q", read("h1"), read("h2"))
	}
}

// Targets may name params: the host to act on is a run's argument
// (targets: "{{ .params.certname }}"), so nothing else is connected.
func TestTargetsFromParams(t *testing.T) {
	f := setup(t, `name: p
params:
  who: {type: string}
steps:
  - id: one
    targets: "{{ .params.who }}"
    command: 'echo "{{ .host.name }}" >> $H/by'
  - id: always
    targets: h3
    command: 'true'
`, "h1", "h2", "h3")
	_, _, err := f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"who": "h2"} })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	read := func(h string) string { b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "by")); return string(b) }
	if read("h1") != "" || read("h2") != "h2\n" || read("h3") != "" {
		t.Errorf("h1 %q, h2 %q, h3 %q", read("h1"), read("h2"), read("h3"))
	}
	_, _, err = f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"who": "nosuch"} })
	if err == nil {
		t.Error("a param naming no host: no error")
	}
	// Rendered empty: no host, no error.
	os.Remove(filepath.Join(f.hostDir("h2"), "by"))
	if _, _, err = f.run(context.Background(), func(o *Options) { o.Params = map[string]any{"who": ""} }); err != nil {
		t.Errorf("empty selector: %v", err)
	}
	if read("h1")+read("h2")+read("h3") != "" {
		t.Error("an empty selector ran on hosts")
	}
}

// A step skipped by its when, by a guard, by its block's when or by
// --start-at registers {skipped: true, changed: false}, so later conditions
// read .registered.NAME.changed without asking whether the step ran; a
// resumed run registers what the previous run recorded.
func TestSkippedStepsRegister(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: early
    targets: web
    command: echo early
    register: early
  - id: by-when
    targets: web
    when: "{{ false }}"
    command: echo never
    register: w
  - id: by-guard
    targets: web
    creates: /
    command: echo never
    register: g
  - id: block
    targets: web
    when: "{{ false }}"
    steps:
      - {id: inner, command: echo never, register: b}
  - id: write
    targets: web
    command: 'echo "w={{ .registered.w.skipped }}/{{ .registered.w.changed }} g={{ .registered.g.skipped }}/{{ .registered.g.changed }} b={{ .registered.b.skipped }}/{{ .registered.b.changed }} early={{ .registered.early.skipped }}/{{ .registered.early.changed }}" > $H/seen; test ! -e $H/break'
`, "h1")
	seen := func() string {
		b, _ := os.ReadFile(filepath.Join(f.hostDir("h1"), "seen"))
		return strings.TrimSpace(string(b))
	}
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := seen(); got != "w=true/false g=true/false b=true/false early=false/true" {
		t.Errorf("skipped steps registered %q", got)
	}
	if _, _, err := f.run(context.Background(), func(o *Options) { o.StartAt = "write" }); err != nil {
		t.Fatal(err)
	}
	if got := seen(); got != "w=true/false g=true/false b=true/false early=true/false" {
		t.Errorf("--start-at: %q", got)
	}
	// The previous run's early changed, by-when skipped: a resumed run
	// registers what it recorded.
	os.WriteFile(filepath.Join(f.hostDir("h1"), "break"), nil, 0o644)
	if _, _, err := f.run(context.Background(), nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("want the failure of write, got %v", err)
	}
	os.Remove(filepath.Join(f.hostDir("h1"), "break"))
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Resume = true })
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.results()["early h1"]; !strings.HasPrefix(got, "skipped done in the previous run") {
		t.Errorf("early on resume: %q", got)
	}
	if got := seen(); got != "w=true/false g=true/false b=true/false early=false/true" {
		t.Errorf("--resume: %q", got)
	}
}

// Options.Flavor gives templates .flavor (empty without one) and refuses an
// unknown flavor on the host that names it.
func TestFlavor(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: bin
    targets: web
    command: 'echo "{{ if .flavor }}{{ .flavor.bin.puppet }}{{ else }}none{{ end }}" > $H/bin'
`, "h1", "h2", "h3")
	flavors := map[string]string{"h1": "openvox8", "h2": "", "h3": "puppet6"}
	_, sum, err := f.run(context.Background(), func(o *Options) {
		o.Flavor = func(h *inventory.Host) (*puppet.Flavor, error) { return puppet.Lookup(flavors[h.Name]) }
	})
	if !errors.Is(err, ErrFailed) || !strings.Contains(sum.Failed["h3"], `h3: vars.flavor: unknown flavor "puppet6"`) {
		t.Errorf("unknown flavor: %v %v", err, sum.Failed)
	}
	for h, want := range map[string]string{"h1": "/opt/puppetlabs/bin/puppet\n", "h2": "none\n"} {
		if b, _ := os.ReadFile(filepath.Join(f.hostDir(h), "bin")); string(b) != want {
			t.Errorf("%s: %q, want %q", h, b, want)
		}
	}
}

// A wait with while gives up as soon as while fails (the service it waits
// for died) rather than at its timeout, and says why; while it holds, the
// wait goes on until ready.
func TestWaitGivesUpWhenWhileFails(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: dead
    targets: web
    wait: {command: "test -e $H/ready", while: "test -e $H/alive", timeout: 1m, interval: 50ms}
`, "h1")
	start := time.Now()
	rec, _, _ := f.run(context.Background(), nil)
	var got string
	for _, e := range rec.kinds(report.HostResult) {
		if e.Step == "dead" {
			got = string(e.Status) + " " + e.Error
		}
	}
	if !strings.HasPrefix(got, "failed") || !strings.Contains(got, `"test -e $H/alive" failed (exit 1)`) {
		t.Errorf("dead h1 = %q, want a failure naming the while command", got)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the wait took %s: it should give up at once, not at its 1m timeout", d)
	}
	f2 := setup(t, `name: p
steps:
  - id: alive
    targets: web
    wait: {command: "n=$(cat $H/n 2>/dev/null || echo 0); echo $((n+1)) > $H/n; [ $n -ge 3 ]", while: "true", timeout: 1m, interval: 10ms}
`, "h1")
	rec, _, err := f2.run(context.Background(), nil)
	if err != nil || !strings.HasPrefix(rec.results()["alive h1"], "ok") {
		t.Errorf("alive h1 = %q (%v), want ok once the command succeeds", rec.results()["alive h1"], err)
	}
}
