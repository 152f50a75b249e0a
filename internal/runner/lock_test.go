package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/step"
	"github.com/troupe/troupe/internal/transport"
)

// The lock cannot be redirected by another user, against Debian's real sshd:
// a root run refuses a lock path in a directory others can write (where a
// symlink was planted), and by default locks in a directory only the login
// user can write.
func TestLockNotRedirectableOverOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	os.MkdirAll(filepath.Join(content, "plans"), 0o755)
	os.MkdirAll(filepath.Join(content, "roles"), 0o755)
	os.WriteFile(filepath.Join(content, "plans", "p.yaml"), []byte(`name: p
steps:
  - id: where
    targets: all
    command: 'for d in /run/troupe "$HOME/.cache/troupe"; do test -d "$d/troupe.lock" && cat "$d/troupe.lock/owner"; done; true'
    register: where
  - id: show
    targets: all
    message: "lock={{ .registered.where.stdout }}"
`), 0o644)
	l := &plan.Loader{FS: os.DirFS(content), Actions: step.Registry{}, Funcs: render.Funcs()}
	p, err := l.Load("p")
	if err != nil {
		t.Fatal(err)
	}

	// /tmp as another user sees it: world-writable and sticky, with a
	// symlink planted where the lock would go, pointing at a root-owned file
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o644)
	pub := filepath.Join(dir, "pub")
	os.Mkdir(pub, 0o755)
	os.Chmod(pub, 0o1777)
	os.Chmod(dir, 0o755)
	planted := filepath.Join(pub, "troupe.lock")
	// dated back to pass for a stale lock, which a run would take over
	if out, err := runAs(sshtest.TestUser, "ln -s "+victim+" "+planted+" && touch -h -d 2020-01-01 "+planted); err != nil {
		t.Fatalf("plant the symlink as %s: %v %s", sshtest.TestUser, err, out)
	}

	run := func(user, lockVar string) (*recorder, error) {
		vars := ""
		if lockVar != "" {
			vars = ", vars: {troupe_lock: " + lockVar + "}"
		}
		inv, err := inventory.LoadBytes(filepath.Join(dir, "inv.yaml"), []byte(fmt.Sprintf(
			"version: 1\nconfig: {ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s}}\ngroups:\n  web:\n    targets: [{name: h, address: 127.0.0.1%s}]\n",
			user, o.Port, o.KeyFile, o.KnownHosts, vars)))
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		_, err = Run(context.Background(), Options{Plan: p, Inventory: inv, Params: map[string]any{}, StateDir: filepath.Join(dir, "state-"+user),
			Reporter: rec, Redactor: &secret.Redactor{}})
		return rec, err
	}

	_, err = run("root", planted)
	if err == nil || !strings.Contains(err.Error(), "refusing the lock") || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("a lock in a world-writable directory must be refused, got %v", err)
	}
	if held := (*LockHeldError)(nil); errors.As(err, &held) {
		t.Errorf("an unsafe lock is not held by another run (nothing to wait for): %v", held)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file behind the planted symlink was written: %q", b)
	}
	if fi, err := os.Lstat(planted); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted symlink was touched: %v %v", fi, err)
	}

	// by default: /run/troupe for root, ~/.cache/troupe for anyone else,
	// and released at the end
	for user, want := range map[string]string{"root": "/run/troupe/troupe.lock", sshtest.TestUser: "/home/" + sshtest.TestUser + "/.cache/troupe/troupe.lock"} {
		rec, err := run(user, "")
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		var msg string
		for _, e := range rec.kinds(report.HostResult) {
			if e.Step == "show" {
				msg = e.Reason
			}
		}
		if !strings.Contains(msg, "lock=troupe run p by ") {
			t.Errorf("%s: the lock was not held in its own directory during the run: %q", user, msg)
		}
		if _, err := runAs(user, "test ! -e "+want); err != nil {
			t.Errorf("%s: lock %s left behind", user, want)
		}
		if out, _ := runAs(user, "stat -c %a "+filepath.Dir(want)); !strings.HasSuffix(strings.TrimSpace(string(out)), "00") && !strings.HasSuffix(strings.TrimSpace(string(out)), "55") {
			t.Errorf("%s: lock directory mode %s: others can write it", user, out)
		}
	}
}

func runAs(user, cmd string) ([]byte, error) {
	return exec.Command("runuser", "-u", user, "--", "sh", "-c", cmd).CombinedOutput()
}

// Over Debian's real sshd the lock is taken, refused, taken over when stale
// and released over the connection's SFTP channel (no session of its own),
// as the login user; a directory that user does not own is still refused.
func TestLockOverSFTP(t *testing.T) {
	o := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	ctx := context.Background()
	user, err := transport.Dial(ctx, o.User)
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	mine := filepath.Join(dir, "mine")
	os.Mkdir(mine, 0o755)
	if out, err := exec.Command("chown", sshtest.TestUser, mine).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	l := filepath.Join(mine, "troupe.lock")

	got, fo, err := lockOne(ctx, user, l, "run one", lockStale)
	if err != nil || got != l || fo == nil {
		t.Fatalf("lockOne = %q, %v, %v; want %q taken over SFTP", got, fo, err, l)
	}
	fi, err := os.Stat(filepath.Join(l, "owner"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Fatalf("owner file %v, %v: want it written by %s", fi, err, sshtest.TestUser)
	}
	if _, _, err := lockOne(ctx, user, l, "run two", lockStale); err == nil || !strings.Contains(err.Error(), `locked by "run one"`) {
		t.Errorf("a held lock: want a refusal naming its holder, got %v", err)
	}
	old := time.Now().Add(-2 * lockStale)
	os.Chtimes(filepath.Join(l, "owner"), old, old)
	if _, _, err := lockOne(ctx, user, l, "run two", lockStale); err != nil {
		t.Errorf("a stale lock must be taken over: %v", err)
	}
	if err := releaseFiles(fo, l, "run one"); err != nil { // not ours any more: kept
		t.Error(err)
	}
	if b, _ := os.ReadFile(filepath.Join(l, "owner")); string(b) != "run two\n" {
		t.Errorf("owner %q after releasing someone else's lock", b)
	}
	if err := releaseFiles(fo, l, "run two"); err != nil {
		t.Error(err)
	}
	if exists(l) {
		t.Error("lock not released")
	}
	if left, _ := filepath.Glob(filepath.Join(mine, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}

	// a root run locks over SFTP too, private to root
	root, err := transport.Dial(ctx, o.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rl := filepath.Join(dir, "root.lock")
	if got, fo, err := lockOne(ctx, root, rl, "run root", lockStale); err != nil || fo == nil || got != rl {
		t.Fatalf("root: lockOne = %q, %v, %v", got, fo, err)
	}
	for p, want := range map[string]os.FileMode{rl: 0o700 | os.ModeDir, filepath.Join(rl, "owner"): 0o600} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != want || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: %v %v, want root's, mode %v", p, fi.Mode(), err, want)
		}
	}

	// a directory another user owns is refused (by lockScript: the uid
	// SFTP guessed might be wrong)
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	os.Chown(other, 1, 1)
	if _, _, err := lockOne(ctx, user, filepath.Join(other, "troupe.lock"), "run four", lockStale); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("a directory owned by another user: want a refusal, got %v", err)
	}
}
