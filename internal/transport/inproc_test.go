package transport_test

// Fast tests against the in-process server (sshtest.StartServer).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

func TestRunSeparatesStreamsAndExitCode(t *testing.T) {
	c := dial(t, sshtest.StartServer(t).Config)
	var streamOut, streamErr bytes.Buffer
	res := run(t, c, transport.Cmd{
		Command: `echo "it's out"; echo err >&2; exit 3`,
		Stdout:  &streamOut, Stderr: &streamErr,
	})
	want := transport.Result{Stdout: "it's out\n", Stderr: "err\n", ExitCode: 3}
	if res != want {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
	if streamOut.String() != want.Stdout || streamErr.String() != want.Stderr {
		t.Errorf("streamed stdout %q stderr %q", streamOut.String(), streamErr.String())
	}
	res = run(t, c, transport.Cmd{Command: "tr a-z A-Z", Stdin: strings.NewReader("hello\n")})
	if res.Stdout != "HELLO\n" || res.ExitCode != 0 {
		t.Errorf("stdin: %+v", res)
	}
	// A comment on the last line must not swallow the wrapper's closing brace.
	res = run(t, c, transport.Cmd{Command: "echo a # trailing comment"})
	if res.Stdout != "a\n" || res.ExitCode != 0 {
		t.Errorf("trailing comment: %+v", res)
	}
}

func TestHostKeyPolicies(t *testing.T) {
	srv := sshtest.StartServer(t)
	empty := filepath.Join(t.TempDir(), "known_hosts")

	t.Run("strict refuses unknown host", func(t *testing.T) {
		cfg := srv.Config
		cfg.KnownHosts = empty
		_, err := transport.Dial(context.Background(), cfg)
		if !errors.Is(err, transport.ErrHostKey) {
			t.Fatalf("err = %v, want ErrHostKey", err)
		}
		mustContain(t, "error", err.Error(), fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", srv.Port, empty))
		if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("strict mode wrote %s", empty)
		}
	})
	t.Run("accept-new adds unknown host", func(t *testing.T) {
		cfg := srv.Config
		cfg.KnownHosts = filepath.Join(t.TempDir(), "sub", "known_hosts")
		cfg.HostKeyCheck = transport.HostKeyAcceptNew
		dial(t, cfg).Close()
		b, err := os.ReadFile(cfg.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, "known_hosts", string(b), fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", srv.Port))
		cfg.HostKeyCheck = transport.HostKeyStrict // now known
		dial(t, cfg)
	})
	t.Run("accept-new never writes through a link or in a shared directory", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "victim")
		os.WriteFile(target, nil, 0o644) // empty: known_hosts is read through the link first
		link := filepath.Join(t.TempDir(), "known_hosts")
		os.Symlink(target, link)
		shared := filepath.Join(t.TempDir(), "shared")
		os.Mkdir(shared, 0o777)
		os.Chmod(shared, 0o777)
		for kh, why := range map[string]string{link: "symbolic link", filepath.Join(shared, "known_hosts"): "world-writable"} {
			cfg := srv.Config
			cfg.KnownHosts, cfg.HostKeyCheck = kh, transport.HostKeyAcceptNew
			_, err := transport.Dial(context.Background(), cfg)
			if !errors.Is(err, transport.ErrHostKey) {
				t.Fatalf("%s: err = %v, want ErrHostKey", kh, err)
			}
			mustContain(t, "error", err.Error(), why)
		}
		if b, _ := os.ReadFile(target); len(b) != 0 {
			t.Errorf("a key written through the link: %q", b)
		}
		if _, err := os.Stat(filepath.Join(shared, "known_hosts")); err == nil {
			t.Error("known_hosts made in a world-writable directory")
		}
	})
	t.Run("off accepts anything", func(t *testing.T) {
		cfg := srv.Config
		cfg.KnownHosts = empty
		cfg.HostKeyCheck = transport.HostKeyOff
		if transport.InsecureHostKeyWarning(cfg) == "" {
			t.Error("no warning for host_key_check: off")
		}
		dial(t, cfg)
	})
	t.Run("changed key refused", func(t *testing.T) {
		other, _, _ := ed25519Key(t)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, other) + "\n"
		if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, policy := range []string{transport.HostKeyStrict, transport.HostKeyAcceptNew} {
			cfg := srv.Config
			cfg.KnownHosts, cfg.HostKeyCheck = kh, policy
			_, err := transport.Dial(context.Background(), cfg)
			if !errors.Is(err, transport.ErrHostKey) {
				t.Fatalf("%s: err = %v, want ErrHostKey", policy, err)
			}
			mustContain(t, "error", err.Error(), "HAS CHANGED")
		}
		if b, _ := os.ReadFile(kh); string(b) != line {
			t.Errorf("known_hosts modified after a changed key:\n%s", b)
		}
	})
	t.Run("bad policy", func(t *testing.T) {
		cfg := srv.Config
		cfg.HostKeyCheck = "yes"
		if _, err := transport.Dial(context.Background(), cfg); err == nil {
			t.Fatal("no error for host_key_check: yes")
		}
	})
}

func ed25519Key(t *testing.T) (ssh.PublicKey, string, error) {
	t.Helper()
	pub, path, err := sshtest.WriteClientKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	return pub, path, nil
}

func TestSilentServerTimesOut(t *testing.T) {
	srv := sshtest.StartServer(t, sshtest.Silent())
	cfg := srv.Config
	cfg.ConnectTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := transport.Dial(context.Background(), cfg)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Dial to a silent server succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if elapsed > 5*time.Second {
		t.Errorf("Dial took %v with a 500ms connect timeout", elapsed)
	}
	mustContain(t, "error", err.Error(), "connect_timeout")

	// ctx cancels the handshake too.
	cfg.ConnectTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := transport.Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("Dial with a cancelled ctx: %v", err)
	}
}

func TestCancelKillsRemoteCommand(t *testing.T) {
	c := dial(t, sshtest.StartServer(t).Config)
	checkCancelKills(t, c, false)
}

func TestCancelDoesNotLeakGoroutines(t *testing.T) {
	c := dial(t, sshtest.StartServer(t).Config)
	run(t, c, transport.Cmd{Command: "true"}) // warm up
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := c.Run(ctx, transport.Cmd{Command: "sleep 10"}); err != context.DeadlineExceeded {
			t.Fatalf("err = %v", err)
		}
		cancel()
	}
	var now int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= before+2 {
			return
		}
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("goroutines: %d before, %d after 5 cancelled runs\n%s", before, now, buf[:runtime.Stack(buf, true)])
}

func TestParallelRunsOnOneConn(t *testing.T) {
	c := dial(t, sshtest.StartServer(t).Config)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() {
			res, err := c.Run(context.Background(), transport.Cmd{Command: fmt.Sprintf("sleep 0.1; echo %d", i)})
			if err == nil && res.Stdout != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("run %d: %+v", i, res)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestJumpHostInProcess(t *testing.T) {
	bastion := sshtest.StartServer(t)
	target := sshtest.StartServer(t)
	cfg := target.Config
	jump := bastion.Config
	cfg.Jump = &jump
	c := dial(t, cfg)
	if res := run(t, c, transport.Cmd{Command: "echo via-bastion"}); res.Stdout != "via-bastion\n" {
		t.Errorf("Run via jump host: %+v", res)
	}
	// The target's host key is still checked through the jump host.
	cfg.KnownHosts = bastion.KnownHosts
	if _, err := transport.Dial(context.Background(), cfg); !errors.Is(err, transport.ErrHostKey) {
		t.Errorf("wrong target key via jump host: err = %v, want ErrHostKey", err)
	}
}

func TestUploadDownloadInProcess(t *testing.T) {
	for _, opts := range [][]sshtest.Option{nil, {sshtest.NoSFTP()}} {
		name := "sftp"
		if opts != nil {
			name = "exec-fallback"
		}
		t.Run(name, func(t *testing.T) {
			c := dial(t, sshtest.StartServer(t, opts...).Config)
			checkUpload(t, c, transport.File{Mode: 0o640, Owner: "nobody", Group: "nogroup"})
			checkDownloadMissing(t, c, false)
		})
	}
}

// checkUpload overwrites an existing file in a fresh directory of this
// machine with f (Path and Content are set here) and checks content, mode,
// owner, that the inode changed (rename, not rewrite) and that no temp
// file is left.
func checkUpload(t *testing.T, c transport.Conn, f transport.File) {
	t.Helper()
	dir := t.TempDir()
	f.Path = filepath.Join(dir, "app.conf")
	if err := os.WriteFile(f.Path, []byte("old content, longer than the new one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldIno := inode(t, f.Path)
	f.Content = []byte("[main]\nserver = puppet\n")
	if err := c.Upload(context.Background(), f); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	got, err := os.ReadFile(f.Path)
	if err != nil || !bytes.Equal(got, f.Content) {
		t.Fatalf("content = %q, %v", got, err)
	}
	st, err := os.Stat(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := f.Mode
	if want == 0 {
		want = 0o644
	}
	if st.Mode().Perm() != want {
		t.Errorf("mode = %v, want %v", st.Mode().Perm(), want)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if f.Owner != "" && fmt.Sprint(sys.Uid) != lookupID(t, "passwd", f.Owner) {
		t.Errorf("uid = %d, want %s", sys.Uid, f.Owner)
	}
	if f.Group != "" && fmt.Sprint(sys.Gid) != lookupID(t, "group", f.Group) {
		t.Errorf("gid = %d, want %s", sys.Gid, f.Group)
	}
	if inode(t, f.Path) == oldIno {
		t.Error("inode unchanged: the file was rewritten in place, not renamed over")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after upload, want only app.conf", len(entries))
	}
	// Download reads it back.
	b, err := c.Download(context.Background(), f.Path, f.Sudo)
	if err != nil || !bytes.Equal(b, f.Content) {
		t.Errorf("Download = %q, %v", b, err)
	}
}

func checkDownloadMissing(t *testing.T, c transport.Conn, sudo bool) {
	t.Helper()
	_, err := c.Download(context.Background(), "/nonexistent/troupe/file", sudo)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Download(missing, sudo=%v): err = %v, want fs.ErrNotExist", sudo, err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// lookupID returns the numeric id of a user ("passwd") or group on this machine.
func lookupID(t *testing.T, db, name string) string {
	t.Helper()
	b, err := os.ReadFile("/etc/" + db)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == name {
			return f[2]
		}
	}
	t.Fatalf("no %s entry %q", db, name)
	return ""
}

func TestEncryptedKey(t *testing.T) {
	srv := sshtest.StartServer(t, sshtest.KeyPassphrase("hunter2"))
	cfg := srv.Config
	_, err := transport.Dial(context.Background(), cfg)
	if !errors.Is(err, transport.ErrKeyPassphrase) {
		t.Fatalf("err = %v, want ErrKeyPassphrase", err)
	}
	mustContain(t, "error", err.Error(), srv.KeyFile)
	mustContain(t, "error", err.Error(), "passphrase_env")

	cfg.Passphrase = "wrong"
	if _, err := transport.Dial(context.Background(), cfg); !errors.Is(err, transport.ErrKeyPassphrase) {
		t.Errorf("wrong passphrase: err = %v", err)
	}
	cfg.Passphrase = ""
	cfg.PassphraseEnv = "TROUPE_TEST_KEY_PASSPHRASE"
	t.Setenv(cfg.PassphraseEnv, "hunter2")
	dial(t, cfg)
}

func TestLocal(t *testing.T) {
	c := transport.Local()
	res := run(t, c, transport.Cmd{Command: "echo out; echo err >&2; cat; exit 5", Stdin: strings.NewReader("in\n")})
	if want := (transport.Result{Stdout: "out\nin\n", Stderr: "err\n", ExitCode: 5}); res != want {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
	checkCancelKills(t, c, false)
	checkUpload(t, c, transport.File{Mode: 0o600})
	if os.Geteuid() == 0 {
		checkUpload(t, c, transport.File{Mode: 0o640, Owner: "nobody", Group: "nogroup"})
	}
	checkDownloadMissing(t, c, false)
}

// A Hidden command reaches the shell on stdin, ahead of its own input, and
// behaves as it would in argv: same output, exit code and stdin.
func TestHiddenCommandKeepsItsStdin(t *testing.T) {
	for name, c := range map[string]transport.Conn{"ssh": dial(t, sshtest.StartServer(t).Config), "local": transport.Local()} {
		res := run(t, c, transport.Cmd{Command: "read a; echo \"got=$a\"; cat; echo s3cret-arg >/dev/null; exit 3", Hidden: true, Stdin: strings.NewReader("one\ntwo\n")})
		if res.Stdout != "got=one\ntwo\n" || res.ExitCode != 3 {
			t.Errorf("%s: %+v", name, res)
		}
	}
}

// Only a failure to connect is ErrUnreachable (a plan's ignore_unreachable
// steps skip such a host): a closed port, an address without a route or
// an answer, a server that never speaks SSH, a closed port behind a jump
// host. A host that answers and refuses (host key, authentication) is not,
// nor is a dial its context cancels.
func TestOnlyAFailureToConnectIsUnreachable(t *testing.T) {
	srv := sshtest.StartServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	silent := sshtest.StartServer(t, sshtest.Silent())
	_, otherKey, _ := ed25519Key(t)
	jump := srv.Config

	for _, tt := range []struct {
		name        string
		cfg         func(c *transport.Config)
		ctx         func() (context.Context, context.CancelFunc)
		unreachable bool
	}{
		{name: "closed port", unreachable: true, cfg: func(c *transport.Config) { c.Port = closed }},
		// TEST-NET-1 (RFC 5737): no host answers there; no route, or the
		// connect_timeout, whichever this machine's network says first
		{name: "no answer", unreachable: true, cfg: func(c *transport.Config) {
			c.Address, c.ConnectTimeout = "192.0.2.1", 300*time.Millisecond
		}},
		{name: "no SSH handshake", unreachable: true, cfg: func(c *transport.Config) {
			*c = silent.Config
			c.ConnectTimeout = 300 * time.Millisecond
		}},
		{name: "closed port behind a jump host", unreachable: true, cfg: func(c *transport.Config) { c.Port, c.Jump = closed, &jump }},
		{name: "unknown host key", cfg: func(c *transport.Config) { c.KnownHosts = filepath.Join(t.TempDir(), "known_hosts") }},
		{name: "authentication failed", cfg: func(c *transport.Config) { c.PrivateKey = otherKey }},
		{name: "cancelled", cfg: func(c *transport.Config) { c.Address = "192.0.2.1" }, ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config
			tt.cfg(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			c, err := transport.Dial(ctx, cfg)
			if err == nil {
				c.Close()
				t.Fatal("dialled")
			}
			if errors.Is(err, transport.ErrUnreachable) != tt.unreachable {
				t.Errorf("errors.Is(%q, ErrUnreachable) = %v, want %v", err, !tt.unreachable, tt.unreachable)
			}
			if tt.unreachable && !strings.HasPrefix(err.Error(), "host ") {
				t.Errorf("the error names no host: %q", err) // its text is the dial's own
			}
		})
	}
}
