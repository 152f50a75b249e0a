package runner

import (
	"context"
	"errors"
	"fmt"
	"github.com/troupe/troupe/internal/transport"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/step"
)

// benchPlan loads the fan-out benchmark's plan (fixtures/bench, see
// cmd/troupe-bench): the simple plan whose per-host cost is measured.
func benchPlan(t *testing.T) *plan.Plan {
	t.Helper()
	l := &plan.Loader{FS: os.DirFS(filepath.Join("..", "..", "fixtures", "bench")), Actions: step.Registry{}, Funcs: render.Funcs()}
	p, err := l.Load("fanout")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serverInventory is an inventory of one host per in-process server, each
// with its own scratch directory (the var the bench plan writes in) and
// its lock there.
func serverInventory(t *testing.T, servers []*sshtest.Server) *inventory.Inventory {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nconfig: {ssh: {user: %s, private_key: %s, connect_timeout: %s}}\ntargets:\n",
		servers[0].Config.User, servers[0].KeyFile, servers[0].Config.ConnectTimeout)
	for i, s := range servers {
		scratch := t.TempDir()
		fmt.Fprintf(&b, "  - {name: h%d, address: 127.0.0.1, port: %d, config: {ssh: {known_hosts: %s, private_key: %s}}, vars: {scratch: %q, troupe_lock: %q}}\n",
			i, s.Port, s.KnownHosts, s.KeyFile, scratch, filepath.Join(scratch, "troupe.lock"))
	}
	inv, err := inventory.LoadBytes("inv.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("inventory: %v\n%s", err, b.String())
	}
	return inv
}

// maxSessionsFanOut is what the bench plan may cost a host: one session per
// step that runs a command (echo, touch, checksum) and the one SFTP
// channel that the lock, the upload and its probe share.
const maxSessionsFanOut = 4

// maxSFTPFanOut is the SFTP requests the bench plan may cost a host logged
// in as root (a non-root login adds two: realpath and lstat of its home, to
// learn its uid): init 1; the lock 7 (lstat of its directory, mkdir, chmod,
// the owner file's open, write, chmod, close); the touch step's lstat 1;
// the upload's probe of the destination 1, its write 5 (open, write, chmod,
// close, posix-rename) and the listing for leftover temp files 4 (opendir,
// readdir until its end, close), sent alongside the write; the release 5
// (the owner file's open, read, close, then remove and rmdir).
const maxSFTPFanOut = 24

// A simple plan opens no more sessions per host than it has commands, plus
// the shared SFTP channel, over one connection (each session is a fork and
// a shell in sshd: the per-host cost of a fan-out).
func TestFanOutSessionsPerHost(t *testing.T) {
	sshtest.Hermetic(t)
	var servers []*sshtest.Server
	for range 3 {
		servers = append(servers, sshtest.StartServer(t))
	}
	payload := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(payload, []byte("ten kibibytes, give or take"), 0o644)
	rec := &recorder{}
	_, err := Run(context.Background(), Options{Plan: benchPlan(t), Inventory: serverInventory(t, servers),
		Params: map[string]any{"payload": payload}, StateDir: t.TempDir(), Reporter: rec, Redactor: &secret.Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.kinds(report.HostResult)); n != 4*len(servers) {
		t.Fatalf("%d host results, want %d", n, 4*len(servers))
	}
	for i, s := range servers {
		st := s.Stats()
		t.Logf("h%d: %d conns, %d sessions (%d sftp), %d sftp requests %v, commands %q", i, st.Conns, st.Sessions, st.SFTPChannels, st.SFTPRequests(), st.SFTP, st.Commands)
		if st.Conns != 1 || st.Sessions > maxSessionsFanOut || st.SFTPChannels != 1 {
			t.Errorf("h%d: %d connections, %d sessions (%d of them SFTP); want 1 connection, at most %d sessions, 1 SFTP",
				i, st.Conns, st.Sessions, st.SFTPChannels, maxSessionsFanOut)
		}
		if n := st.SFTPRequests(); n > maxSFTPFanOut || st.SFTP["write"] == 0 || st.SFTP["mkdir"] == 0 {
			t.Errorf("h%d: %d SFTP requests %v; want at most %d, the upload's write and the lock's mkdir among them",
				i, n, st.SFTP, maxSFTPFanOut)
		}
	}
}

// Waiting for a handshake slot is not the host's fault: with two slots and
// a server that answers one connection at a time, forty hosts whose
// connect_timeout is shorter than the whole queue all connect. Were the
// deadline started before the slot (or were there no slots, so all forty
// queued at the server at once), the last ones would miss it.
func TestHandshakeQueueDoesNotCountAgainstConnectTimeout(t *testing.T) {
	sshtest.Hermetic(t)
	defer func(n int) { handshakeSlots = n }(handshakeSlots)
	handshakeSlots = 2
	// the queue: 4 s; a host's own wait: 2 × 100 ms, and its handshake
	const hosts, delay, timeout = 40, 100 * time.Millisecond, 2500 * time.Millisecond
	srv := sshtest.StartServer(t, sshtest.SlowHandshakes(delay))
	srv.Config.ConnectTimeout = timeout
	servers := make([]*sshtest.Server, hosts)
	for i := range servers {
		servers[i] = srv
	}
	l := &plan.Loader{FS: fstest.MapFS{"plans/p.yaml": {Data: []byte("name: p\nsteps:\n  - {id: hi, targets: all, command: 'true'}\n")}},
		Actions: step.Registry{}, Funcs: render.Funcs()}
	p, err := l.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	_, err = Run(context.Background(), Options{Plan: p, Inventory: serverInventory(t, servers), Params: map[string]any{},
		StateDir: t.TempDir(), Reporter: rec, Redactor: &secret.Redactor{}, Concurrency: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.kinds(report.HostResult)); n != hosts {
		t.Errorf("%d host results, want %d", n, hosts)
	}
	if n := srv.Stats().Conns; n != hosts {
		t.Errorf("the server saw %d connections, want %d", n, hosts)
	}
}

// A host is locked as soon as it is connected, before the others are; when
// another host then proves unreachable, the locks already taken are
// released and no step runs.
func TestUnreachableHostReleasesLocksTakenMeanwhile(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: one, targets: web, command: touch $H/one}
`, "h1", "h2")
	lock := filepath.Join(f.hostDir("h1"), "troupe.lock")
	_, _, err := f.run(context.Background(), func(o *Options) {
		local := o.Dial
		o.Dial = func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
			if cfg.Host == "h1" {
				return local(ctx, cfg)
			}
			// h2 fails only once h1 holds its lock
			give := time.After(10 * time.Second)
			for !exists(lock) {
				select {
				case <-give:
					return nil, errors.New("h1 was not locked while h2 was still connecting")
				case <-time.After(5 * time.Millisecond):
				}
			}
			return nil, errors.New("no route to host")
		}
	})
	if err == nil || !strings.Contains(err.Error(), "cannot reach 1 of 2 hosts") || !strings.Contains(err.Error(), "no route to host") {
		t.Fatalf("want the unreachable host named, got %v", err)
	}
	if exists(lock) {
		t.Error("the lock taken on h1 was not released")
	}
	if exists(filepath.Join(f.hostDir("h1"), "one")) {
		t.Error("a step ran although a host was unreachable")
	}
}

// beatingFiles is a host's file operations whose WriteFile (the lock's
// heartbeat) waits until let is closed, counting the writes in flight.
type beatingFiles struct {
	transport.FileOps
	inFlight *atomic.Int32
	let      chan struct{}
}

func (b beatingFiles) WriteFile(string, []byte, fs.FileMode) error {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	<-b.let
	return nil
}

// A heartbeat refreshes the hosts' locks side by side, not one after
// another: a beat over hundreds of slow hosts would outlast lockBeat and
// hold up the release, which waits for the beat under way.
func TestHeartbeatRefreshesLocksSideBySide(t *testing.T) {
	const hosts = 5
	var inFlight atomic.Int32
	let := make(chan struct{})
	l := newLocks("p", LockTimes{})
	for i := range hosts {
		name := fmt.Sprintf("h%d", i)
		l.conns[name] = nil
		l.paths[name] = "/nowhere/" + name
		l.files[name] = beatingFiles{inFlight: &inFlight, let: let}
	}
	done := make(chan struct{})
	go func() { l.beat(); close(done) }()
	give := time.After(10 * time.Second)
	for inFlight.Load() < hosts {
		select {
		case <-give:
			t.Fatalf("%d of %d locks being refreshed at once, want all", inFlight.Load(), hosts)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(let)
	<-done
}
