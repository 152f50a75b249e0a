package cli_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/sshtest"
)

func TestWebhookServeRefusesToStartWithoutSecret(t *testing.T) {
	r := troupe(t, []string{"TROUPE_WEBHOOK_SECRET=", "MY_SECRET="}, "webhook", "serve", "-i", "../../inventory/site.yaml", "--secret-env", "MY_SECRET")
	if r.code != 2 || !strings.Contains(r.stderr, "$MY_SECRET is empty or not set; refusing to start") {
		t.Errorf("code %d stderr:\n%s", r.code, r.stderr)
	}
	// a deploy that could only fail is refused at start, not at the first push
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	write(t, inv, "version: 1\nconfig: {ssh: {sudo_password_env: NOT_SET_ANYWHERE}}\ngroups:\n  ca: {targets: [ca01]}\n  compilers: {targets: [c01]}\n")
	r = troupe(t, []string{"TROUPE_WEBHOOK_SECRET=" + longSecret}, "webhook", "serve", "-i", inv, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "sudo_password_env NOT_SET_ANYWHERE is not set") {
		t.Errorf("code %d stderr:\n%s", r.code, r.stderr)
	}
	// a secret anyone could guess is refused before anything else
	r = troupe(t, []string{"TROUPE_WEBHOOK_SECRET=x"}, "webhook", "serve", "-i", inv, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "$TROUPE_WEBHOOK_SECRET is 1 bytes; a secret must be at least 16") {
		t.Errorf("a 1-byte secret: code %d stderr:\n%s", r.code, r.stderr)
	}
}

const longSecret = "0123456789abcdef0123"

// Plain HTTP is served on loopback only, unless --insecure-listen says
// otherwise (with a warning); TLS may listen anywhere. A bad inventory
// stops each run that passes the check, so nothing listens here.
func TestWebhookServeListensOnLoopbackOrTLS(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	write(t, inv, "version: 1\nconfig: {ssh: {sudo_password_env: NOT_SET_ANYWHERE}}\ngroups:\n  ca: {targets: [ca01]}\n  compilers: {targets: [c01]}\n")
	env := []string{"TROUPE_WEBHOOK_SECRET=" + longSecret}
	const passed = "sudo_password_env NOT_SET_ANYWHERE is not set"
	for _, tc := range []struct {
		args    []string
		refused bool
	}{
		{[]string{"--listen", ":0"}, true},
		{[]string{"--listen", "0.0.0.0:0"}, true},
		{[]string{"--listen", "[::]:0"}, true},
		{[]string{"--listen", "192.0.2.1:8088"}, true},
		{nil, false}, // the default, 127.0.0.1:8088
		{[]string{"--listen", "localhost:0"}, false},
		{[]string{"--listen", "[::1]:0"}, false},
		{[]string{"--listen", ":0", "--insecure-listen"}, false},
		{[]string{"--listen", ":0", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, false},
	} {
		r := troupe(t, env, append([]string{"webhook", "serve", "-i", inv}, tc.args...)...)
		refused := strings.Contains(r.stderr, "is not a loopback address; refusing plain HTTP there: give --tls-cert and --tls-key")
		if r.code != 2 || refused != tc.refused || !refused && !strings.Contains(r.stderr, passed) {
			t.Errorf("%v: code %d, want refused %v; stderr:\n%s", tc.args, r.code, tc.refused, r.stderr)
		}
		if warned := strings.Contains(r.stderr, "WARNING: --insecure-listen: plain HTTP on :0"); warned != slices.Contains(tc.args, "--insecure-listen") {
			t.Errorf("%v: warning %v; stderr:\n%s", tc.args, warned, r.stderr)
		}
	}
}

// TestWebhookServeDeploysThroughTheRunner runs the real binary: a signed
// GitHub push runs the deploy plan against real sshd with the pushed
// branch as its environment param, /status shows it, SIGTERM stops it.
func TestWebhookServeDeploysThroughTheRunner(t *testing.T) {
	sshd := sshtest.StartOpenSSH(t, sshtest.OpenSSHOptions{})
	dir := t.TempDir()
	out := filepath.Join(dir, "deployed")
	// A stand-in for deploy-code: the same param and step ids, with a message
	// in puppet_code's "env@commit" form and a command that leaves a trace.
	write(t, filepath.Join(dir, "content", "plans", "deploy-code.yaml"), fmt.Sprintf(`name: deploy-code
params:
  environment: {type: string}
steps:
  - id: servers
    targets: all
    steps:
      - id: code
        message: "{{ .params.environment }}@0d1a26e67d8f other@ffffffffffff"
      - id: trace
        command: "echo {{ .params.environment }} >> %s"
`, out))
	os.MkdirAll(filepath.Join(dir, "content", "roles"), 0o755)
	inv := filepath.Join(dir, "inventory.yaml")
	// another run (an operator's upgrade) holds ca01's lock when the push comes
	lock := filepath.Join(dir, "locks", "troupe.lock")
	if err := os.MkdirAll(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	const holder = "troupe run upgrade by op@admin01 pid 4242 since 2026-12-07T03:00:00Z"
	write(t, filepath.Join(lock, "owner"), holder+"\n")
	write(t, inv, fmt.Sprintf("version: 1\nconfig: {ssh: {user: root, port: %d, private_key: %s, known_hosts: %s}}\ngroups:\n  ca:\n    targets: [{name: ca01, address: 127.0.0.1, vars: {troupe_lock: %s}}]\n",
		sshd.Port, sshd.KeyFile, sshd.KnownHosts, lock))
	port, err := sshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hook-secret-41-at-least-16"
	cmd := exec.Command(troupeBin, "--content", filepath.Join(dir, "content"), "--state-dir", filepath.Join(dir, "state"),
		"webhook", "serve", "-i", inv, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--branch", "production")
	cmd.Env = append(os.Environ(), "TROUPE_WEBHOOK_SECRET="+secret, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	status := func() (map[string]any, bool) {
		resp, err := http.Get(base + "/status")
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var st map[string]any
		return st, json.NewDecoder(resp.Body).Decode(&st) == nil
	}
	waitFor := func(what string, ok func(map[string]any) bool) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) { // a loaded machine: each try connects and takes the lock
			if st, up := status(); up && ok(st) {
				return st
			}
		}
		t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
		return nil
	}
	waitFor("the server", func(map[string]any) bool { return true })

	body, err := os.ReadFile("../../fixtures/webhook/github-push.json")
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest("POST", base+"/", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	// refused by the lock, the deploy waits, and /status names the holder
	waitFor("the deploy to wait for the lock", func(st map[string]any) bool {
		q, _ := st["queued"].([]any)
		if len(q) != 1 {
			return false
		}
		r := q[0].(map[string]any)
		return r["result"] == "waiting" && r["holder"] == holder
	})
	if b, _ := os.ReadFile(out); len(b) != 0 {
		t.Errorf("the plan ran under another run's lock: %q", b)
	}
	if err := os.RemoveAll(lock); err != nil { // the upgrade ends
		t.Fatal(err)
	}
	st := waitFor("the deploy", func(st map[string]any) bool {
		d, _ := st["deploys"].([]any)
		return len(d) == 1
	})
	d := st["deploys"].([]any)[0].(map[string]any)
	if d["environment"] != "production" || d["result"] != "ok" || d["commit"] != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
		t.Errorf("deploy record %v\nstderr:\n%s", d, stderr.String())
	}
	if d["tries"] != 1.0 {
		t.Errorf("want one try refused by the lock: %v", d)
	}
	if servers, _ := d["servers"].(map[string]any); servers["ca01"] != "0d1a26e67d8f" || len(servers) != 1 {
		t.Errorf("per-server commits %v", d["servers"])
	}
	if b, _ := os.ReadFile(out); string(b) != "production\n" {
		t.Errorf("the plan ran with environment %q", b)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	logs := stderr.String()
	if !strings.Contains(logs, `deploy production at 0d1a26e67d8f: locked by "`+holder+`"; try 2 in 5s`) {
		t.Errorf("want a line for the wait:\n%s", logs)
	}
	if strings.Count(logs, "deploy production at 0d1a26e67d8f (github, 1 push): ok in ") != 1 || !strings.Contains(logs, "servers: ca01@0d1a26e67d8f") {
		t.Errorf("want one line for the deploy:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Error("the secret is in the log")
	}
}
