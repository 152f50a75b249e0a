package cli_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/troupe/troupe/internal/sshtest"
)

// Every bad invocation is refused with exit 2 before any host is dialled:
// the inventory's only host is a listener that counts the connections it
// is offered.
func TestBadInvocationsRefusedBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialled atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	write(t, filepath.Join(content, "plans", "p.yaml"), `name: p
steps:
  - {id: first, targets: all, command: "true"}
  - id: group
    targets: all
    steps:
      - {id: inner, command: "true"}
`)
	write(t, filepath.Join(content, "plans", "nosrc.yaml"), "name: nosrc\nsteps:\n  - {id: up, targets: all, upload: {src: files/absent, dest: /tmp/x}}\n")
	write(t, filepath.Join(content, "plans", "badtmpl.yaml"), "name: badtmpl\nsteps:\n  - {id: t, targets: all, template: {src: templates/bad.tmpl, dest: /tmp/x}}\n")
	write(t, filepath.Join(content, "templates", "bad.tmpl"), "{{ if .x }}\n")
	os.MkdirAll(filepath.Join(content, "roles"), 0o755)
	_, key, err := sshtest.WriteClientKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open_key")
	b, _ := os.ReadFile(key)
	write(t, open, string(b)) // 0644: readable by others

	inv := func(name, ssh string) string {
		p := filepath.Join(dir, name+".yaml")
		write(t, p, fmt.Sprintf("version: 1\nconfig:\n  ssh: {port: %d, known_hosts: %s/kh, %s}\ngroups:\n  web:\n    targets: [{name: web1, address: 127.0.0.1}]\n", port, dir, ssh))
		return p
	}
	good := inv("good", "private_key: "+key)
	home := []string{"HOME=" + dir, "SSH_AUTH_SOCK="}
	base := []string{"--content", content, "--state-dir", filepath.Join(dir, "state")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown start-at", []string{"run", "p", "-i", good, "--start-at", "innr"}, `no step "innr"; nearest ids: group/inner`},
		{"invalid limit", []string{"run", "p", "-i", good, "--limit", "nosuchgroup"}, "--limit:"},
		{"resume with no journal", []string{"run", "p", "-i", good, "--resume"}, "--resume: no previous run"},
		{"concurrency 0", []string{"run", "p", "-i", good, "--concurrency", "0"}, "--concurrency 0"},
		{"usage error", []string{"run", "p", "-i", good, "--bogus"}, "unknown flag --bogus"},
		{"missing key", []string{"run", "p", "-i", inv("missing", "private_key: "+dir+"/nokey")}, "nokey: no such file"},
		{"key readable by others", []string{"run", "p", "-i", inv("open", "private_key: "+open)}, "are too open; it is required that your private key files are NOT accessible by others"},
		{"no credentials", []string{"run", "p", "-i", inv("nocreds", "user: nobody")}, "no credentials"},
		{"agent without socket", []string{"run", "p", "-i", inv("agent", "agent: true")}, "SSH_AUTH_SOCK is not set"},
		{"missing upload source", []string{"run", "nosrc", "-i", good}, `upload: src "files/absent"`},
		{"validate: missing upload source", []string{"plan", "validate", "nosrc"}, `upload: src "files/absent"`},
		{"validate: template syntax", []string{"plan", "validate", "badtmpl"}, "bad.tmpl:2: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := troupe(t, home, append(append([]string{}, base...), tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Errorf("exit %d (want 2), want %q in:\n%s\n%s", r.code, tc.want, r.stdout, r.stderr)
			}
			if n := dialled.Load(); n != 0 {
				t.Fatalf("%d connection(s) made", n)
			}
		})
	}
	// the same key with the right mode is accepted up to the dial (which
	// then fails: the listener is no sshd), so the checks above are not
	// refusing everything
	r := troupe(t, home, append(append([]string{}, base...), "run", "p", "-i", good, "--start-at", "group")...)
	if r.code != 1 || dialled.Load() == 0 {
		t.Errorf("a good invocation must dial: exit %d, %d connection(s)\n%s\n%s", r.code, dialled.Load(), r.stdout, r.stderr)
	}
}
