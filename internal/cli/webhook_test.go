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
	r = troupe(t, []string{"TROUPE_WEBHOOK_SECRET=x"}, "webhook", "serve", "-i", inv, "--listen", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "sudo_password_env NOT_SET_ANYWHERE is not set") {
		t.Errorf("code %d stderr:\n%s", r.code, r.stderr)
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
	write(t, inv, fmt.Sprintf("version: 1\nconfig: {ssh: {user: root, port: %d, private_key: %s, known_hosts: %s}}\ngroups:\n  ca:\n    targets: [{name: ca01, address: 127.0.0.1}]\n",
		sshd.Port, sshd.KeyFile, sshd.KnownHosts))
	port, err := sshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hook-secret-41"
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
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
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
	st := waitFor("the deploy", func(st map[string]any) bool {
		d, _ := st["deploys"].([]any)
		return len(d) == 1
	})
	d := st["deploys"].([]any)[0].(map[string]any)
	if d["environment"] != "production" || d["result"] != "ok" || d["commit"] != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
		t.Errorf("deploy record %v\nstderr:\n%s", d, stderr.String())
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
	if strings.Count(logs, "deploy production at 0d1a26e67d8f (github, 1 push): ok in ") != 1 || !strings.Contains(logs, "servers: ca01@0d1a26e67d8f") {
		t.Errorf("want one line for the deploy:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Error("the secret is in the log")
	}
}
