package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/step"
	"github.com/troupe/troupe/internal/transport"
)

// testActions are the real actions plus peer_cmd, an action that reaches
// other hosts as lb_server does, without HAProxy: it names them
// (step.PeerUser) and runs a command on each through Exec.Peer.
type testActions struct{ step.Registry }

func (a testActions) Kinds() []string { return append(a.Registry.Kinds(), "peer_cmd", "read_cmd") }

func (a testActions) Decode(kind string, node ast.Node) (any, error) {
	switch kind {
	case "peer_cmd":
		p := &peerCmd{}
		return p, yaml.NodeToValue(node, p, yaml.Strict())
	case "read_cmd":
		p := &readCmd{}
		return p, yaml.NodeToValue(node, p, yaml.Strict())
	}
	return a.Registry.Decode(kind, node)
}

// readCmd is a read-only action (it runs under --noop too) that fails as
// its command does.
type readCmd struct {
	Cmd string `yaml:"cmd"`
}

func (p *readCmd) ReadOnly() bool { return true }

func (p *readCmd) Run(ctx context.Context, x *step.Exec) (step.Result, error) {
	res, err := x.MustProbe(ctx, p.Cmd)
	return step.Result{Stdout: res.Stdout}, err
}

type peerCmd struct {
	Hosts string `yaml:"hosts"` // comma-separated; a template
	Cmd   string `yaml:"cmd"`
}

func (p *peerCmd) Peers(sc step.Scope) ([]string, error) {
	s, err := sc.Render(p.Hosts)
	if err != nil {
		return nil, err
	}
	return strings.Split(s, ","), nil
}

// Run answers "PEER=OUTPUT ..." for its peers, in order.
func (p *peerCmd) Run(ctx context.Context, x *step.Exec) (step.Result, error) {
	names, err := p.Peers(x.Scope())
	if err != nil {
		return step.Result{}, err
	}
	var out []string
	for _, n := range names {
		px, err := x.Peer(ctx, n)
		if err != nil {
			return step.Result{}, err
		}
		res, err := px.MustChange(ctx, p.Cmd, "")
		if err != nil {
			return step.Result{}, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, n+"="+strings.TrimSpace(res.Stdout))
	}
	return step.Result{Changed: true, Msg: strings.Join(out, " ")}, nil
}

// dials counts the connections a run opens, per host.
type dials struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *dials) count(f *fixture, refuse string) func(*Options) {
	d.n = map[string]int{}
	return func(o *Options) {
		dial := o.Dial
		o.Dial = func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
			d.mu.Lock()
			d.n[cfg.Host]++
			d.mu.Unlock()
			if cfg.Host == refuse {
				return nil, errors.New("dial tcp: connection refused")
			}
			return dial(ctx, cfg)
		}
	}
}

func (d *dials) String() string { d.mu.Lock(); defer d.mu.Unlock(); return fmt.Sprint(d.n) }

// Peers are named in each target's scope (a templated list here), connected
// with the targets over one connection per host (a peer that is also a
// target shares it), locked for the run and released at its end; --limit
// narrows the targets, not the peers.
func TestPeersConnectedAndLockedWithTheTargets(t *testing.T) {
	f := setup(t, `name: p
params:
  peers: {type: string, default: "lb1,h2"}
steps:
  - {id: first, targets: web, command: touch $H/first}
  - id: poke
    targets: h1
    peer_cmd: {hosts: "{{ .params.peers }}", cmd: 'test -d $H/troupe.lock && echo "locked $(basename $H)"'}
`, "h1", "h2", "lb1")
	var d dials
	rec, _, err := f.run(context.Background(), func(o *Options) {
		o.Limit, o.Params = "h1,h2", map[string]any{"peers": "lb1,h2"}
		d.count(f, "")(o)
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := rec.results()["poke h1"]; got != "changed lb1=locked lb1 h2=locked h2" {
		t.Errorf("poke h1 = %q: the peers were not reached, or not locked while the step ran", got)
	}
	if got := d.String(); got != "map[h1:1 h2:1 lb1:1]" {
		t.Errorf("dials %s: want one connection per host", got)
	}
	if exists(filepath.Join(f.hostDir("lb1"), "first")) {
		t.Error("--limit must keep lb1 out of the targets")
	}
	if exists(filepath.Join(f.hostDir("lb1"), "troupe.lock")) {
		t.Error("the peer's lock was not released")
	}
	if got := rec.kinds(report.Warning); len(got) != 0 {
		t.Errorf("warnings: %v", got)
	}
}

// The load balancers lb_server acts on are locked with the targets: one
// another run holds refuses the run before its first step, naming the
// holder and the step that needs the host; an unreachable one too.
func TestPeerLockedOrUnreachableStopsTheRunBeforeAnyStep(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: first, targets: h1, command: touch $H/first}
  - {id: drain, targets: h1, lb_server: {state: drain}}
`, "h1", "lb1")
	os.Mkdir(filepath.Join(f.hostDir("lb1"), "troupe.lock"), 0o700)
	os.WriteFile(filepath.Join(f.hostDir("lb1"), "troupe.lock", "owner"), []byte("troupe run other by alice@laptop\n"), 0o644)
	rec, _, err := f.run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "lb1 (lb_server in step drain): locked by \"troupe run other by alice@laptop\"") ||
		!strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("want a lock refusal naming lb1, its step and its holder, got %v", err)
	}
	// typed, so a caller can wait for the holder (the webhook does)
	var held *LockHeldError
	if !errors.As(err, &held) || held.Holder != "troupe run other by alice@laptop" || held.LockHolder() != held.Holder {
		t.Errorf("want a *LockHeldError naming the holder in %T %v", err, err)
	}
	if exists(filepath.Join(f.hostDir("h1"), "first")) || len(rec.results()) != 0 {
		t.Errorf("a step ran although a peer was locked: %v", rec.results())
	}
	if exists(filepath.Join(f.hostDir("h1"), "troupe.lock")) {
		t.Error("the lock taken on h1 was not released")
	}

	os.RemoveAll(filepath.Join(f.hostDir("lb1"), "troupe.lock"))
	var d dials
	rec, _, err = f.run(context.Background(), d.count(f, "lb1"))
	if err == nil || !strings.Contains(err.Error(), "cannot reach 1 of 2 hosts; nothing was changed") ||
		!strings.Contains(err.Error(), "lb1 (lb_server in step drain): dial tcp: connection refused") {
		t.Fatalf("want an unreachable peer named with its step, got %v", err)
	}
	if exists(filepath.Join(f.hostDir("h1"), "first")) || len(rec.results()) != 0 {
		t.Errorf("a step ran although a peer was unreachable: %v", rec.results())
	}
	if got := d.String(); got != "map[h1:1 lb1:1]" {
		t.Errorf("dials %s", got)
	}
}

// A peer group with no host, or a peer not in the inventory, refuses the
// run before any connection.
func TestPeerThatCannotBeNamedRefusesTheRun(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: first, targets: web, command: touch $H/first}
  - {id: drain, targets: web, lb_server: {state: drain}}
  - {id: poke, targets: web, peer_cmd: {hosts: "ghost", cmd: "true"}}
`, "h1")
	var d dials
	_, _, err := f.run(context.Background(), d.count(f, ""))
	var bad *InputError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), `step drain: lb_server: inventory group "loadbalancer" has no hosts`) ||
		!strings.Contains(err.Error(), `step poke: peer_cmd: no host "ghost" in the inventory`) {
		t.Fatalf("want an input error naming both steps, got %v", err)
	}
	if got := d.String(); got != "map[]" {
		t.Errorf("dialled %s", got)
	}
}

// A peer named from .registered is known only when its step runs: the run
// says so at the start, and connects and locks it then; a lock another run
// holds fails that step.
func TestPeerNamedFromRegisteredIsReachedWhenItsStepRuns(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: who, targets: h1, command: echo lb1, register: who, changed_when: "{{ false }}"}
  - id: poke
    targets: h1
    peer_cmd: {hosts: "{{ trim .registered.who.stdout }}", cmd: 'test -d $H/troupe.lock && echo locked'}
`, "h1", "lb1")
	var d dials
	rec, _, err := f.run(context.Background(), d.count(f, ""))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := rec.results()["poke h1"]; got != "changed lb1=locked" {
		t.Errorf("poke h1 = %q", got)
	}
	var warned []string
	for _, e := range rec.kinds(report.Warning) {
		warned = append(warned, e.Host+": "+e.Text)
	}
	if len(warned) != 2 || !strings.Contains(warned[0], "step poke: the hosts of peer_cmd are named from .registered") ||
		!strings.HasPrefix(warned[1], "lb1: connected and locked only when step poke ran") {
		t.Errorf("warnings %q", warned)
	}
	if exists(filepath.Join(f.hostDir("lb1"), "troupe.lock")) {
		t.Error("the late peer's lock was not released")
	}

	os.Mkdir(filepath.Join(f.hostDir("lb1"), "troupe.lock"), 0o700)
	os.WriteFile(filepath.Join(f.hostDir("lb1"), "troupe.lock", "owner"), []byte("troupe run other by alice@laptop\n"), 0o644)
	_, sum, err := f.run(context.Background(), nil)
	if !errors.Is(err, ErrFailed) || !strings.Contains(sum.Failed["h1"], "cannot lock lb1: locked by \"troupe run other by alice@laptop\"") {
		t.Errorf("a late peer another run holds: %v %v", err, sum.Failed)
	}
}

// FindPeers is what `plan validate -i` shows: every peer with the steps
// that need it, delegates included, and the steps whose peers only the run
// can tell.
func TestFindPeers(t *testing.T) {
	f := setup(t, `name: p
params:
  who: {type: string, required: true}
steps:
  - {id: drain, targets: h1, lb_server: {state: drain}}
  - {id: ready, targets: h1, lb_server: {state: ready}}
  - {id: copy, targets: h1, delegate_to: lb2, command: "true"}
  - {id: later, targets: h1, peer_cmd: {hosts: "{{ .params.who }}", cmd: "true"}}
`, "h1", "lb1", "lb2")
	p, err := FindPeers(Options{Plan: f.plan, Inventory: f.inv})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range p.Hosts {
		got = append(got, h.String())
	}
	if strings.Join(got, "; ") != "lb1 (lb_server in step drain, and 1 more); lb2 (lb_server in step drain, and 2 more)" {
		t.Errorf("peers %q", got)
	}
	if len(p.Later) != 1 || !strings.Contains(p.Later[0], "step later: the hosts of peer_cmd are named from .params") {
		t.Errorf("later %q", p.Later)
	}
}

// The step's sudo reaches its peers, against Debian's real sshd: a peer
// whose login (troupe-test) does not use sudo runs the step's commands as
// root when the step says sudo: true, and as itself otherwise.
func TestStepSudoReachesPeersOverOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	u, err := user.Lookup(sshtest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // troupe-test reaches its lock directory below
	peerLocks := filepath.Join(dir, "peer-locks")
	os.Mkdir(peerLocks, 0o700)
	os.Chown(peerLocks, uid, -1)
	content := filepath.Join(dir, "content")
	os.MkdirAll(filepath.Join(content, "plans"), 0o755)
	os.MkdirAll(filepath.Join(content, "roles"), 0o755)
	os.WriteFile(filepath.Join(content, "plans", "p.yaml"), []byte(`name: p
steps:
  - {id: as-root, targets: t, sudo: true, peer_cmd: {hosts: p, cmd: id -u}}
  - {id: as-login, targets: t, peer_cmd: {hosts: p, cmd: id -u}}
`), 0o644)
	l := &plan.Loader{FS: os.DirFS(content), Actions: testActions{}, Funcs: render.Funcs()}
	pl, err := l.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.LoadBytes(filepath.Join(dir, "inv.yaml"), []byte(fmt.Sprintf(`version: 1
config: {ssh: {port: %d, private_key: %s, known_hosts: %s}}
targets:
  - {name: t, address: 127.0.0.1, config: {ssh: {user: root}}, vars: {troupe_lock: %s}}
  - {name: p, address: 127.0.0.1, config: {ssh: {user: %s, sudo: false}}, vars: {troupe_lock: %s}}
`, o.Port, o.KeyFile, o.KnownHosts, filepath.Join(dir, "troupe.lock"), sshtest.TestUser, filepath.Join(peerLocks, "troupe.lock"))))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Run(ctx, Options{Plan: pl, Inventory: inv, Params: map[string]any{}, StateDir: filepath.Join(dir, "state"),
		Reporter: rec, Redactor: &secret.Redactor{}}); err != nil {
		t.Fatalf("run: %v", err)
	}
	got := rec.results()
	if got["as-root t"] != "changed p=0" || got["as-login t"] != "changed p="+u.Uid {
		t.Errorf("as-root %q (want p=0), as-login %q (want p=%s)", got["as-root t"], got["as-login t"], u.Uid)
	}
}
