package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
)

// unreachableSite is an inventory whose one host refuses connections: a run
// gets as far as dialling (exit 1) and changes nothing anywhere.
func unreachableSite(t *testing.T, dir string) string {
	t.Helper()
	port, err := sshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := sshtest.WriteClientKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, fmt.Sprintf("version: 1\nconfig: {ssh: {port: %d, connect_timeout: 2s, known_hosts: %s/kh, private_key: %s}}\ngroups:\n  web:\n    targets: [{name: web1, address: 127.0.0.1}]\n", port, dir, key))
	write(t, filepath.Join(dir, "kh"), "")
	return inv
}

// ping.yaml changed by a comment: content that replaces a shipped plan.
func overridePing(t *testing.T, content string) {
	t.Helper()
	b, err := os.ReadFile("../../plans/ping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(content, "plans", "ping.yaml"), string(b)+"# planted\n")
}

func TestContentOverrideAnnounced(t *testing.T) {
	dir := t.TempDir()
	inv := unreachableSite(t, dir)
	content := filepath.Join(dir, "content")
	overridePing(t, content)
	write(t, filepath.Join(content, "plans", "mine.yaml"), "name: mine\nsteps:\n  - {id: a, targets: all, command: \"true\"}\n")
	note := "troupe: content from " + content + " overrides the shipped plans and roles: replaces plans/ping.yaml; adds plans/mine.yaml\n"
	state := filepath.Join(dir, "state")
	for _, format := range []string{"human", "json"} {
		r := troupe(t, []string{"HOME=" + dir}, "--content", content, "--state-dir", state, "run", "ping", "-i", inv, "--format", format)
		if r.code != 1 || !strings.Contains(r.stderr, note) {
			t.Errorf("%s: code %d, want 1 and on stderr %q:\n%s", format, r.code, note, r.stderr)
		}
		if strings.Contains(r.stdout, "content from") {
			t.Errorf("%s: the note went to stdout:\n%s", format, r.stdout)
		}
		if format == "json" {
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("json: stdout has a non-JSON line %q", l)
				}
			}
			if len(lines) < 2 {
				t.Errorf("json: no events on stdout:\n%s", r.stdout)
			}
		}
	}
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
	for _, l := range logs {
		if b, _ := os.ReadFile(l); !strings.Contains(string(b), "replaces plans/ping.yaml") {
			t.Errorf("debug log %s does not record the override", l)
		}
	}
	if len(logs) != 2 {
		t.Errorf("want 2 debug logs, got %v", logs)
	}
}

// Content another local user could have written is refused before
// anything runs; the same content with proper modes (the control) runs.
func TestUnsafeContentRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(content string) string // returns the path the error must name
	}{
		{"world-writable directory", func(c string) string { os.Chmod(c, 0o777); return c }},
		{"world-writable plan", func(c string) string {
			p := filepath.Join(c, "plans", "ping.yaml")
			os.Chmod(p, 0o666)
			return p
		}},
		{"group-writable plans", func(c string) string {
			p := filepath.Join(c, "plans")
			os.Chmod(p, 0o775)
			return p
		}},
		{"another user's plan", func(c string) string {
			p := filepath.Join(c, "plans", "ping.yaml")
			os.Chown(p, 65534, 65534)
			return p
		}},
		{"another user's link", func(c string) string {
			p := filepath.Join(c, "roles")
			os.Symlink(filepath.Join(c, "plans"), p)
			os.Lchown(p, 65534, 65534)
			return p
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			inv := unreachableSite(t, dir)
			content := filepath.Join(dir, "content")
			overridePing(t, content)
			state := filepath.Join(dir, "state")
			args := []string{"--content", content, "--state-dir", state, "run", "ping", "-i", inv}
			if r := troupe(t, []string{"HOME=" + dir}, args...); r.code != 1 {
				t.Fatalf("control: code %d, want 1 (unreachable):\n%s", r.code, r.stderr)
			}
			os.RemoveAll(state)
			bad := c.spoil(content)
			r := troupe(t, []string{"HOME=" + dir}, args...)
			if r.code != 2 || !strings.Contains(r.stderr, "troupe: refusing the plans and roles in "+content) || !strings.Contains(r.stderr, bad+": ") {
				t.Errorf("code %d, want 2 and a refusal naming %s:\n%s", r.code, bad, r.stderr)
			}
			if r.stdout != "" || exists(state) {
				t.Errorf("refused, yet it reported or wrote (state %v):\n%s", exists(state), r.stdout)
			}
		})
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func troupeIn(t *testing.T, wd string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(troupeBin, args...)
	cmd.Dir, cmd.Env = wd, append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errOut.String(), code}
}

func TestWorkingDirectoryContent(t *testing.T) {
	wd := filepath.Join(t.TempDir(), "wd")
	write(t, filepath.Join(wd, "plans", "mine.yaml"), "name: mine\ndescription: from the working directory\nsteps:\n  - {id: a, targets: all, command: \"true\"}\n")
	r := troupeIn(t, wd, nil, "plan", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "from the working directory") ||
		!strings.Contains(r.stderr, "troupe: content from "+wd+" overrides the shipped plans and roles: adds plans/mine.yaml") {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	os.Chmod(wd, 0o777)
	r = troupeIn(t, wd, nil, "plan", "list")
	if r.code != 2 || !strings.Contains(r.stderr, wd+": it is world-writable (mode 0777)") || r.stdout != "" {
		t.Errorf("world-writable working directory: code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// webhook serve takes content only from --content: a plan in its working
// directory that would stop it (no environment param) is not even read.
func TestWebhookIgnoresWorkingDirectoryContent(t *testing.T) {
	dir := t.TempDir()
	wd := filepath.Join(dir, "wd")
	write(t, filepath.Join(wd, "plans", "deploy-code.yaml"), "name: deploy-code\nsteps:\n  - {id: a, targets: all, command: \"touch /tmp/planted\"}\n")
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, "version: 1\ngroups:\n  ca: {targets: [{name: ca01, address: 192.0.2.1}]}\n  compilers: {targets: [{name: c01, address: 192.0.2.2}]}\n")
	env := []string{"TROUPE_WEBHOOK_SECRET=s3cret-hook-0123456789", "TROUPE_CONTENT="}

	// control: the same plan given with --content is read, and refused
	r := troupeIn(t, wd, env, "--content", wd, "webhook", "serve", "-i", inv, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, `plan "deploy-code" has no environment param`) {
		t.Fatalf("--content: code %d, want 2:\n%s", r.code, r.stderr)
	}

	cmd := exec.Command(troupeBin, "--state-dir", filepath.Join(dir, "state"), "webhook", "serve", "-i", inv, "--listen", "127.0.0.1:0")
	cmd.Dir, cmd.Env = wd, append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var seen []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening on") {
		seen = append(seen, sc.Text())
	}
	if !strings.Contains(sc.Text(), "listening on") {
		t.Fatalf("webhook serve did not start:\n%s", strings.Join(seen, "\n"))
	}
	if strings.Contains(strings.Join(seen, "\n"), "content from") {
		t.Errorf("announced content it should not read:\n%s", strings.Join(seen, "\n"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		for sc.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("no exit 20 s after SIGTERM")
	}
}

func TestUnsafeStateDirRefused(t *testing.T) {
	dir := t.TempDir()
	inv := unreachableSite(t, dir)
	for _, c := range []struct {
		name, reason string
		mode         os.FileMode
		owner        int
	}{
		{"world-writable", "it is world-writable (mode 0777)", 0o777, 0},
		{"another user's", "it is owned by uid 65534", 0o700, 65534},
		{"control", "", 0o700, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			os.Mkdir(state, c.mode)
			os.Chmod(state, c.mode)
			os.Chown(state, c.owner, c.owner)
			r := troupe(t, []string{"HOME=" + dir}, "--state-dir", state, "run", "ping", "-i", inv)
			logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
			if c.reason == "" {
				if r.code != 1 || len(logs) != 1 {
					t.Fatalf("proper state dir: code %d, logs %v:\n%s", r.code, logs, r.stderr)
				}
				return
			}
			if r.code != 2 || !strings.Contains(r.stderr, "troupe: refusing the state directory "+state+": "+state+": "+c.reason) {
				t.Errorf("code %d, want 2 and the reason:\n%s", r.code, r.stderr)
			}
			if r.stdout != "" || exists(filepath.Join(state, "logs")) {
				t.Errorf("refused, yet it reported or wrote:\n%s", r.stdout)
			}
		})
	}
}
