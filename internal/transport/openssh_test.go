package transport_test

// Tests against Debian's real sshd (sshtest.StartOpenSSH; skipped unless root
// with openssh-server installed). The sshd runs on this machine, so the tests
// check the remote side directly: files, owners, the process table.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

func TestOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{PasswordUser: true})

	// known_hosts pins only the ed25519 key while sshd offers ecdsa and rsa
	// too: plain x/crypto knownhosts fails this with "key mismatch".
	root := dial(t, o.Root)
	user := dial(t, o.User)
	pw := dial(t, o.PwUser)

	t.Run("streams and exit code", func(t *testing.T) {
		t.Parallel()
		res := run(t, user, transport.Cmd{Command: `id -un; echo "it's err" >&2; exit 7`})
		if want := (transport.Result{Stdout: sshtest.TestUser + "\n", Stderr: "it's err\n", ExitCode: 7}); res != want {
			t.Errorf("Result = %+v, want %+v", res, want)
		}
		res = run(t, user, transport.Cmd{Command: "id -un", Sudo: true})
		if res.Stdout != "root\n" || res.ExitCode != 0 {
			t.Errorf("sudo: %+v", res)
		}
	})

	t.Run("host key changed", func(t *testing.T) {
		t.Parallel()
		other, _, _ := ed25519Key(t)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(o.Addr)}, other) + "\n"
		if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, policy := range []string{"", transport.HostKeyAcceptNew} {
			cfg := o.User
			cfg.KnownHosts, cfg.HostKeyCheck = kh, policy
			_, err := transport.Dial(context.Background(), cfg)
			if !errors.Is(err, transport.ErrHostKey) {
				t.Fatalf("policy %q: err = %v, want ErrHostKey", policy, err)
			}
			mustContain(t, "error", err.Error(), "HAS CHANGED")
		}
		if b, _ := os.ReadFile(kh); string(b) != line {
			t.Errorf("known_hosts modified:\n%s", b)
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		t.Parallel()
		cfg := o.User
		cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		_, err := transport.Dial(context.Background(), cfg)
		if !errors.Is(err, transport.ErrHostKey) {
			t.Fatalf("strict: err = %v, want ErrHostKey", err)
		}
		mustContain(t, "error", err.Error(), "ssh-keyscan -p")

		cfg.HostKeyCheck = transport.HostKeyOff
		dial(t, cfg)

		cfg.HostKeyCheck = transport.HostKeyAcceptNew
		dial(t, cfg)
		cfg.HostKeyCheck = transport.HostKeyStrict
		dial(t, cfg) // the key accept-new stored is the one sshd uses
	})

	for _, tc := range []struct {
		name string
		c    transport.Conn
		sudo bool
	}{
		{"cancel kills: root", root, false},
		{"cancel kills: user", user, false},
		{"cancel kills: user sudo", user, true},
		{"cancel kills: password sudo", pw, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCancelKills(t, tc.c, tc.sudo)
		})
	}

	t.Run("30 parallel commands on one conn", func(t *testing.T) {
		t.Parallel()
		c := dial(t, o.User) // a conn of its own: MaxSessions is per connection
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 30 {
			wg.Go(func() {
				res, err := c.Run(context.Background(), transport.Cmd{Command: fmt.Sprintf("sleep 0.2; echo %d", i), Sudo: i%2 == 0})
				if err == nil && (res.Stdout != fmt.Sprintf("%d\n", i) || res.ExitCode != 0) {
					err = fmt.Errorf("run %d: %+v", i, res)
				}
				errs <- err
			})
		}
		for i := range 2 { // the sftp session counts against MaxSessions too
			wg.Go(func() {
				_, err := c.Download(context.Background(), fmt.Sprintf("/nonexistent-%d", i), false)
				if !errors.Is(err, os.ErrNotExist) {
					errs <- fmt.Errorf("download: %v", err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("upload as root", func(t *testing.T) {
		t.Parallel()
		checkUpload(t, root, transport.File{Mode: 0o640, Owner: sshtest.TestUser, Group: "nogroup"})
		checkUpload(t, root, transport.File{Sudo: true}) // sudo is a no-op for root
	})
	t.Run("upload via sudo", func(t *testing.T) {
		t.Parallel()
		checkUpload(t, user, transport.File{Mode: 0o640, Owner: "root", Group: sshtest.TestUser, Sudo: true})
		checkUpload(t, user, transport.File{Mode: 0o600, Sudo: true})
		// The private staging directories are gone.
		stage := filepath.Join("/home", sshtest.TestUser, ".cache/troupe")
		if entries, err := os.ReadDir(stage); err != nil || len(entries) != 0 {
			t.Errorf("staging dir %s: %v entries, err %v", stage, len(entries), err)
		}
	})
	t.Run("upload via password sudo", func(t *testing.T) {
		t.Parallel()
		checkUpload(t, pw, transport.File{Mode: 0o644, Owner: sshtest.PwUser, Sudo: true})
	})
	t.Run("upload without sudo is refused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir() // root-only
		err := user.Upload(context.Background(), transport.File{Path: dir + "/x", Content: []byte("x")})
		if err == nil {
			t.Fatal("non-root upload into a root-only directory succeeded")
		}
	})

	t.Run("sudo password stays secret", func(t *testing.T) {
		t.Parallel()
		// ps runs while sudo and the wrapping shells are alive.
		res := run(t, pw, transport.Cmd{Command: "id -u; ps -eo args", Sudo: true})
		if !strings.HasPrefix(res.Stdout, "0\n") || res.ExitCode != 0 {
			t.Fatalf("Result = %+v", res)
		}
		mustContain(t, "ps output", res.Stdout, "sudo -S -p") // we did see the sudo process
		for what, s := range map[string]string{"stdout (ps -eo args)": res.Stdout, "stderr": res.Stderr} {
			if strings.Contains(s, sshtest.PwPassword) {
				t.Errorf("password found in %s:\n%s", what, s)
			}
		}
		// The password is consumed by sudo, never seen by the command's stdin:
		// with a password prompt, and with NOPASSWD (sudo reads nothing).
		withPW := o.User
		withPW.SudoPassword = "not-needed-secret"
		for name, c := range map[string]transport.Conn{"password sudo": pw, "NOPASSWD sudo": dial(t, withPW)} {
			res := run(t, c, transport.Cmd{Command: "cat; id -u", Sudo: true, Stdin: strings.NewReader("payload\n")})
			if res.Stdout != "payload\n0\n" || res.ExitCode != 0 {
				t.Errorf("%s: Result = %+v, want stdout %q", name, res, "payload\n0\n")
			}
		}
		// A wrong password fails the command, quickly, without leaking it.
		bad := o.PwUser
		bad.SudoPassword = "wrong-secret-123"
		res = run(t, dial(t, bad), transport.Cmd{Command: "id -u", Sudo: true})
		if res.ExitCode == 0 || strings.Contains(res.Stdout+res.Stderr, bad.SudoPassword) {
			t.Errorf("wrong password: %+v", res)
		}
	})

	t.Run("download", func(t *testing.T) {
		t.Parallel()
		secret := filepath.Join(t.TempDir(), "secret") // root-only directory
		if err := os.WriteFile(secret, []byte("s3\x00cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]transport.Conn{"root": root, "sudo": user, "password sudo": pw} {
			b, err := c.Download(context.Background(), secret, true)
			if err != nil || !bytes.Equal(b, []byte("s3\x00cret\n")) {
				t.Errorf("%s: Download = %q, %v", name, b, err)
			}
			checkDownloadMissing(t, c, true)
			checkDownloadMissing(t, c, false)
		}
		_, err := user.Download(context.Background(), secret, false)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			t.Errorf("non-root download of a root-only file: err = %v, want permission error", err)
		}
	})

	t.Run("jump host", func(t *testing.T) {
		t.Parallel()
		cfg := o.Root
		jump := o.User
		cfg.Jump = &jump
		c := dial(t, cfg)
		res := run(t, c, transport.Cmd{Command: "id -un; echo $SSH_CLIENT"})
		if !strings.HasPrefix(res.Stdout, "root\n127.0.0.1 ") {
			t.Errorf("via jump host: %+v", res)
		}
		// The tunnel really goes through the bastion's sshd, as troupe-test.
		out, _ := exec.Command("sh", "-c", "ps -eo user,args | grep '[s]shd: "+sshtest.TestUser+"'").Output()
		if len(out) == 0 {
			t.Error("no sshd session for the jump user")
		}
	})
}

// TestOpenSSHWithoutSFTP covers hardened hosts without the sftp subsystem:
// uploads and downloads go through `cat` over exec.
func TestOpenSSHWithoutSFTP(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{NoSFTP: true, PasswordUser: true})
	root, user, pw := dial(t, o.Root), dial(t, o.User), dial(t, o.PwUser)
	checkUpload(t, root, transport.File{Mode: 0o640, Owner: sshtest.TestUser, Group: "nogroup"})
	checkUpload(t, user, transport.File{Mode: 0o600, Owner: "root", Group: sshtest.TestUser, Sudo: true})
	checkUpload(t, pw, transport.File{Mode: 0o644, Sudo: true})
	for _, c := range []transport.Conn{root, user, pw} {
		checkDownloadMissing(t, c, false)
		checkDownloadMissing(t, c, true)
	}
}

// FileOps run as the login user over the SFTP channel: refused for sudo
// work of a non-root login, and Lstat tells what `stat -c %F %a %u` would.
func TestFileOpsOverOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	root, user := dial(t, o.Root), dial(t, o.User)
	if _, err := user.(transport.FileOpener).FileOps(true); !errors.Is(err, transport.ErrNoFileOps) {
		t.Errorf("sudo FileOps of a non-root login: err = %v, want ErrNoFileOps", err)
	}
	fo, err := root.(transport.FileOpener).FileOps(true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Chmod(f, 0o4750) // os.Chmod would drop the raw setuid bit
	os.Chmod(dir, 0o750)
	os.Symlink(f, filepath.Join(dir, "link"))
	for p, want := range map[string]string{f: "regular 4750 0", filepath.Join(dir, "link"): "link 777 0", dir: "dir 750 0"} {
		a, err := fo.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		kind := map[bool]string{true: "regular"}[a.Mode.IsRegular()] + map[bool]string{true: "dir"}[a.Mode.IsDir()] +
			map[bool]string{true: "link"}[a.Mode&os.ModeSymlink != 0]
		if got := fmt.Sprintf("%s %o %d", kind, a.Perm, a.UID); got != want {
			t.Errorf("Lstat %s = %s, want %s", p, got, want)
		}
	}
	if _, err := fo.Lstat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat of a missing file: %v, want fs.ErrNotExist", err)
	}
	ufo, err := user.(transport.FileOpener).FileOps(false)
	if err != nil {
		t.Fatal(err)
	}
	name, uid, err := ufo.Identity()
	if want, _ := exec.Command("id", "-u", sshtest.TestUser).Output(); err != nil || name != sshtest.TestUser || fmt.Sprint(uid) != strings.TrimSpace(string(want)) {
		t.Errorf("Identity = %s, %d, %v; want %s, %s", name, uid, err, sshtest.TestUser, want)
	}
}
