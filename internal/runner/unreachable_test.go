package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// faces is how the hosts of a test answer the run's dial, through the real
// transport.Dial: "down" is a closed port on this machine, "host key" an
// SSH server whose key known_hosts does not hold, "auth" one that refuses
// the client's key. Every other host is the fixture's local host. Each
// dial is counted, and noted when it came before the first step started.
type faces struct {
	as     map[string]string
	srv    *sshtest.Server
	closed int    // a port nothing listens on
	empty  string // a known_hosts without the server's key
	stray  string // a private key the server does not accept

	mu    sync.Mutex
	n     map[string]int
	early map[string]bool
}

func newFaces(t *testing.T, as map[string]string) *faces {
	t.Helper()
	sshtest.Hermetic(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, stray, err := sshtest.WriteClientKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	return &faces{as: as, srv: sshtest.StartServer(t), closed: closed, empty: empty, stray: stray}
}

// dial is the run's Options change: the dial as the faces say.
func (fc *faces) dial(o *Options) {
	fc.n, fc.early = map[string]int{}, map[string]bool{}
	rec, local := o.Reporter.(*recorder), o.Dial
	o.Dial = func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
		fc.mu.Lock()
		fc.n[cfg.Host]++
		if len(rec.kinds(report.StepStart)) == 0 {
			fc.early[cfg.Host] = true
		}
		fc.mu.Unlock()
		real := fc.srv.Config
		real.Host = cfg.Host
		switch fc.as[cfg.Host] {
		case "down":
			real.Port = fc.closed
		case "host key":
			real.KnownHosts = fc.empty
		case "auth":
			real.PrivateKey = fc.stray
		default:
			return local(ctx, cfg)
		}
		return transport.Dial(ctx, real)
	}
}

// journaled is the last record this run's journal holds of step on host.
func journaled(t *testing.T, sum *Summary, step, host string) record {
	t.Helper()
	f, err := os.Open(sum.Journal)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Type == "result" && r.Step == step && r.Host == host {
			last = r
		}
	}
	if last.Type == "" {
		t.Fatalf("the journal has no result of %s on %s", step, host)
	}
	return last
}

// A host only ignore_unreachable steps target is not dialled before the
// run. Down, each of its steps is skipped as unreachable, naming the dial's
// error, with one dial for the whole run; the register says unreachable
// (read here by a step delegated on its behalf, as a failover promotes a
// standby for a dead server), the skip is not done for --resume, and the
// other hosts' steps run. Up, the same steps run on it, connected when the
// first reaches it, and the register says it was reachable.
func TestIgnoreUnreachableSkipsAHostThatIsDown(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: fence
    targets: h1
    ignore_unreachable: true
    command: touch $H/fenced
    register: fence
  - id: again
    targets: h1
    ignore_unreachable: true
    command: touch $H/again
  - id: tell
    targets: h1
    delegate_to: h2
    ignore_unreachable: true
    command: 'echo "unreachable={{ .registered.fence.unreachable }} skipped={{ .registered.fence.skipped }}" > $H/told'
  - id: promote
    targets: h2
    command: touch $H/promoted
`, "h1", "h2")
	told := func() string {
		b, _ := os.ReadFile(filepath.Join(f.hostDir("h2"), "told"))
		return strings.TrimSpace(string(b))
	}

	fc := newFaces(t, map[string]string{"h1": "down"})
	rec, sum, err := f.run(context.Background(), fc.dial)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	if fence := got["fence h1"]; !strings.HasPrefix(fence, "skipped unreachable: cannot reach h1: host h1: connecting to 127.0.0.1:") ||
		!strings.Contains(fence, "connection refused") || got["again h1"] != fence {
		t.Errorf("fence h1 %q, again h1 %q: want both skipped as unreachable, naming the dial's error", fence, got["again h1"])
	}
	if fc.n["h1"] != 1 || fc.early["h1"] || !fc.early["h2"] {
		t.Errorf("dials %v, before the first step %v: want h1 dialled once, when fence reached it, and h2 before the run", fc.n, fc.early)
	}
	if told() != "unreachable=true skipped=true" || got["tell h1"] != "changed" || got["promote h2"] != "changed" {
		t.Errorf("told %q, results %v", told(), got)
	}
	if sum.Counts[report.Failed] != 0 || sum.Counts[report.Skipped] != 2 {
		t.Errorf("counts %v", sum.Counts)
	}
	if r := journaled(t, sum, "fence", "h1"); r.Done || r.Status != report.Skipped || r.Value.(map[string]any)["unreachable"] != true {
		t.Errorf("journaled %+v: want a skip registering unreachable, not done", r)
	}

	fc = newFaces(t, nil)
	rec, sum, err = f.run(context.Background(), fc.dial)
	if err != nil {
		t.Fatalf("run with h1 up: %v", err)
	}
	got = rec.results()
	if got["fence h1"] != "changed" || !exists(filepath.Join(f.hostDir("h1"), "fenced")) || told() != "unreachable=false skipped=false" {
		t.Errorf("h1 up: results %v, told %q", got, told())
	}
	if fc.n["h1"] != 1 || fc.early["h1"] {
		t.Errorf("dials %v, before the first step %v: want h1 connected once, when fence reached it", fc.n, fc.early)
	}
	if r := journaled(t, sum, "fence", "h1"); !r.Done || r.Value.(map[string]any)["unreachable"] != false {
		t.Errorf("journaled %+v", r)
	}
	var said []string
	for _, e := range rec.kinds(report.Debug) {
		if e.Host == "h1" {
			said = append(said, e.Text)
		}
	}
	if len(said) != 2 || !strings.Contains(said[0], "may be down") || !strings.HasPrefix(said[1], "connected and locked when step fence reached it") {
		t.Errorf("h1's debug lines %q", said)
	}
	if len(rec.kinds(report.Warning)) != 0 {
		t.Errorf("warnings %v", rec.kinds(report.Warning))
	}
}

// A host that answers and refuses is not unreachable: a host key that does
// not match, an authentication that fails, a lock another run holds fail
// the ignore_unreachable step, and the run stops there.
func TestIgnoreUnreachableStillFailsARefusal(t *testing.T) {
	for face, want := range map[string]string{
		"host key": "host key verification failed",
		"auth":     "authentication failed",
		"lock":     `cannot lock h1: locked by "troupe run other by alice@laptop"`,
	} {
		t.Run(face, func(t *testing.T) {
			f := setup(t, `name: p
steps:
  - {id: fence, targets: h1, ignore_unreachable: true, command: touch $H/fenced}
  - {id: promote, targets: h2, command: touch $H/promoted}
`, "h1", "h2")
			if face == "lock" {
				os.Mkdir(filepath.Join(f.hostDir("h1"), "troupe.lock"), 0o700)
				os.WriteFile(filepath.Join(f.hostDir("h1"), "troupe.lock", "owner"), []byte("troupe run other by alice@laptop\n"), 0o644)
			}
			fc := newFaces(t, map[string]string{"h1": face})
			rec, sum, err := f.run(context.Background(), fc.dial)
			if !errors.Is(err, ErrFailed) || !strings.Contains(sum.Failed["h1"], want) {
				t.Fatalf("want fence failed on h1 with %q, got %v, failed %v", want, err, sum.Failed)
			}
			if got := rec.results(); got["fence h1"] != "failed" || got["promote h2"] != "" || exists(filepath.Join(f.hostDir("h2"), "promoted")) {
				t.Errorf("results %v: want the run stopped at fence", got)
			}
			if fc.n["h1"] != 1 || fc.early["h1"] {
				t.Errorf("dials %v, before the first step %v", fc.n, fc.early)
			}
		})
	}
}

// A host some step targets without ignore_unreachable is dialled before
// the run as ever, and stops it when down, before anything changes: here
// a block's step that sets ignore_unreachable: false against its block's
// true. Without that step the block's steps inherit its true: the host is
// skipped, and the others run.
func TestUnreachableHostTargetedWithoutIgnoreStopsTheRun(t *testing.T) {
	const plan = `name: p
steps:
  - {id: fence, targets: h1, ignore_unreachable: true, command: touch $H/fenced}
  - id: outer
    targets: web
    ignore_unreachable: true
    steps:
      - {id: inherits, command: touch $H/inherits}
`
	f := setup(t, plan+"      - {id: own, ignore_unreachable: false, command: touch $H/own}\n", "h1", "h2")
	fc := newFaces(t, map[string]string{"h1": "down"})
	rec, _, err := f.run(context.Background(), fc.dial)
	if err == nil || !strings.Contains(err.Error(), "cannot reach 1 of 2 hosts; nothing was changed") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("want the run refused before its first step, got %v", err)
	}
	if len(rec.results()) != 0 || exists(filepath.Join(f.hostDir("h2"), "inherits")) || !fc.early["h1"] {
		t.Errorf("results %v, dialled before the run %v", rec.results(), fc.early)
	}

	f = setup(t, plan, "h1", "h2")
	fc = newFaces(t, map[string]string{"h1": "down"})
	rec, _, err = f.run(context.Background(), fc.dial)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	if !strings.HasPrefix(got["outer/inherits h1"], "skipped unreachable: ") || got["outer/inherits h2"] != "changed" || fc.n["h1"] != 1 || fc.early["h1"] {
		t.Errorf("results %v, dials %v, before the run %v", got, fc.n, fc.early)
	}
}

// The host stays unreachable for the rest of the run: a later step with
// ignore_unreachable skips it without dialling it again, and a step
// without it that reaches it (a delegate named only at run time) fails
// with the error that made it unreachable.
func TestUnreachableHostStaysUnreachable(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: fence, targets: h1, ignore_unreachable: true, command: touch $H/fenced}
  - {id: who, targets: h2, command: echo h1, register: who, changed_when: "{{ false }}"}
  - {id: again, targets: h1, ignore_unreachable: true, command: touch $H/again}
  - {id: copy, targets: h2, delegate_to: "{{ trim .registered.who.stdout }}", command: touch $H/copied}
`, "h1", "h2")
	fc := newFaces(t, map[string]string{"h1": "down"})
	rec, sum, err := f.run(context.Background(), fc.dial)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("want copy's failure, got %v", err)
	}
	got := rec.results()
	first, ok := strings.CutPrefix(got["fence h1"], "skipped unreachable: ")
	if !ok || got["again h1"] != got["fence h1"] || sum.Failed["h2"] != "copy: "+first {
		t.Errorf("fence h1 %q, again h1 %q, copy failed %q: want the same error throughout", got["fence h1"], got["again h1"], sum.Failed["h2"])
	}
	if fc.n["h1"] != 1 {
		t.Errorf("dials %v: h1 dialled again", fc.n)
	}
}

// delegate_to with ignore_unreachable: a delegate only such steps need is
// not dialled before the run; down, the step is skipped for its target,
// and FindPeers says it may be down. Up, the step runs on it.
func TestIgnoreUnreachableDelegate(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: fence, targets: h2, delegate_to: h1, ignore_unreachable: true, command: touch $H/fenced, register: fence}
  - {id: after, targets: h2, command: 'echo "{{ .registered.fence.unreachable }}" > $H/after'}
`, "h1", "h2")
	after := func() string {
		b, _ := os.ReadFile(filepath.Join(f.hostDir("h2"), "after"))
		return strings.TrimSpace(string(b))
	}
	p, err := FindPeers(Options{Plan: f.plan, Inventory: f.inv, Params: map[string]any{}})
	if err != nil || len(p.Hosts) != 1 || !p.Hosts[0].MayBeDown || p.Hosts[0].String() != "h1 (delegate_to in step fence); may be down (ignore_unreachable): connected when its step reaches it" {
		t.Fatalf("peers %+v, %v", p, err)
	}

	fc := newFaces(t, map[string]string{"h1": "down"})
	rec, _, err := f.run(context.Background(), fc.dial)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := rec.results()["fence h2"]; !strings.HasPrefix(got, "skipped unreachable: cannot reach h1: ") || after() != "true" || fc.n["h1"] != 1 || fc.early["h1"] {
		t.Errorf("fence h2 %q, after %q, dials %v, before the run %v", got, after(), fc.n, fc.early)
	}

	fc = newFaces(t, nil)
	if _, _, err := f.run(context.Background(), fc.dial); err != nil {
		t.Fatalf("run with h1 up: %v", err)
	}
	if !exists(filepath.Join(f.hostDir("h1"), "fenced")) || after() != "false" || fc.early["h1"] {
		t.Errorf("after %q, before the run %v", after(), fc.early)
	}
}

// A step skipped as unreachable is not done: --resume runs it again.
func TestResumeRunsAStepSkippedAsUnreachable(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: fence, targets: h1, ignore_unreachable: true, command: touch $H/fenced}
  - {id: promote, targets: h2, command: 'test ! -e $H/break'}
`, "h1", "h2")
	os.WriteFile(filepath.Join(f.hostDir("h2"), "break"), nil, 0o644)
	fc := newFaces(t, map[string]string{"h1": "down"})
	if _, _, err := f.run(context.Background(), fc.dial); !errors.Is(err, ErrFailed) {
		t.Fatalf("want promote's failure, got %v", err)
	}
	os.Remove(filepath.Join(f.hostDir("h2"), "break"))
	fc = newFaces(t, nil)
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Resume = true; fc.dial(o) })
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := rec.results()["fence h1"]; got != "changed" || !exists(filepath.Join(f.hostDir("h1"), "fenced")) {
		t.Errorf("fence h1 on resume: %q", got)
	}
}

// --noop keeps the same rules: down, skipped as unreachable; up, the
// change is shown and not made, and no lock is taken.
func TestIgnoreUnreachableUnderNoop(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: fence, targets: h1, ignore_unreachable: true, command: touch $H/fenced}
  - {id: promote, targets: h2, command: touch $H/promoted}
`, "h1", "h2")
	noop := func(fc *faces) func(*Options) { return func(o *Options) { o.Noop = true; fc.dial(o) } }
	fc := newFaces(t, map[string]string{"h1": "down"})
	rec, _, err := f.run(context.Background(), noop(fc))
	if err != nil {
		t.Fatalf("noop: %v", err)
	}
	if got := rec.results()["fence h1"]; !strings.HasPrefix(got, "skipped unreachable: ") || fc.n["h1"] != 1 || fc.early["h1"] {
		t.Errorf("fence h1 %q, dials %v, before the run %v", got, fc.n, fc.early)
	}
	fc = newFaces(t, nil)
	rec, _, err = f.run(context.Background(), noop(fc))
	if err != nil {
		t.Fatalf("noop with h1 up: %v", err)
	}
	would := rec.kinds(report.WouldRun)
	if len(would) != 2 || would[0].Host != "h1" || exists(filepath.Join(f.hostDir("h1"), "fenced")) || fc.early["h1"] {
		t.Errorf("would run %v (want fence's command shown on h1, not run), before the run %v", would, fc.early)
	}
	if fc.n["h1"] != 1 {
		t.Errorf("dials %v", fc.n)
	}
}

// Hosts that may be down are reached side by side when their step reaches
// them, not one after another: a dead one's connect_timeout must not hold
// up the others' handshakes. Each dial here waits until all three are
// dialling (or gives up after a while and says how many were).
func TestHostsThatMayBeDownAreReachedSideBySide(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: fence, targets: web, ignore_unreachable: true, command: touch $H/fenced}
`, "h1", "h2", "h3")
	var mu sync.Mutex
	dialling, most := 0, 0
	all := make(chan struct{})
	rec, _, err := f.run(context.Background(), func(o *Options) {
		local := o.Dial
		o.Dial = func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
			mu.Lock()
			if dialling++; dialling == 3 && most < 3 {
				close(all)
			}
			most = max(most, dialling)
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(2 * time.Second):
			}
			mu.Lock()
			dialling--
			mu.Unlock()
			return local(ctx, cfg)
		}
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if most != 3 || len(rec.results()) != 3 {
		t.Errorf("%d hosts dialled at once, want 3; results %v", most, rec.results())
	}
}
