package cli_test

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/sshtest"
)

// A host's stderr full of terminal escapes, quoted by a failed run's final
// error, reaches neither stdout nor stderr raw, in human nor JSON format.
func TestHostEscapesNeverReachTheTerminal(t *testing.T) {
	sshd := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	dir := t.TempDir()
	write(t, filepath.Join(dir, "content", "plans", "escapes.yaml"), `name: escapes
steps:
  - id: shout
    targets: all
    command: |
      printf 'clear\033[2J\033creset\033[8mconceal\033]0;title\007 cr\rfake\b\302\2332J bidi\342\200\256 end\n' >&2; exit 1
`)
	os.MkdirAll(filepath.Join(dir, "content", "roles"), 0o755)
	// A lock of this test's own: the test user's default lock is shared
	// with the other packages' tests that log in as that user.
	u, err := user.Lookup(sshtest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	locks := filepath.Join(dir, "locks")
	if err := os.Mkdir(locks, 0o700); err != nil || os.Chown(locks, uid, -1) != nil || os.Chmod(dir, 0o711) != nil {
		t.Fatalf("a lock directory for %s: %v", sshtest.TestUser, err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf(`version: 1
config:
  ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s}
groups:
  web:
    targets: [{name: target, address: 127.0.0.1, vars: {troupe_lock: %s}}]
`, sshtest.TestUser, sshd.Port, sshd.KeyFile, sshd.KnownHosts, filepath.Join(locks, "troupe.lock")))
	env := []string{"HOME=" + dir}
	common := []string{"--content", filepath.Join(dir, "content"), "--state-dir", filepath.Join(dir, "state"), "run", "escapes", "-i", inv}
	for _, format := range []string{"human", "json"} {
		r := troupe(t, env, append(common, "--format", format)...)
		if r.code != 1 {
			t.Fatalf("%s: exit %d, want 1:\n%s\n%s", format, r.code, r.stdout, r.stderr)
		}
		quoted := r.stderr
		if format == "human" {
			quoted = r.stdout // the human report ends with the error itself
		}
		if !strings.Contains(quoted, "clearresetconceal crfake bidi end") {
			t.Errorf("%s: the host's words, cleaned, are not in the final error:\n%s", format, quoted)
		}
		for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			for _, bad := range []string{"\x1b", "\r", "\b", "\x07", "\u009b", "\u202e"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s %s passes %q:\n%q", format, name, bad, out)
				}
			}
		}
	}
}
