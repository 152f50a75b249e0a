package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
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

	"github.com/troupe/troupe/internal/webhook"
)

// webhookScenario: a commit pushed to the control repository and its
// GitHub push event sent to `troupe webhook serve` put every compiler on
// that commit; the time from the event to the last compiler is reported.
func webhookScenario(ctx context.Context, t *testing.T, s *site) {
	const listen = "127.0.0.1:18088"
	secret := make([]byte, 24)
	rand.Read(secret)
	key := hex.EncodeToString(secret)

	cmd := exec.CommandContext(ctx, s.bin, "webhook", "serve", "-i", s.inv, "--listen", listen,
		"--branch", "production", "--state-dir", s.dir, "--color", "never")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "TROUPE_WEBHOOK_SECRET="+key)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("webhook log:\n%s", logs.String())
	}()
	status := func() (webhook.Status, error) {
		var st webhook.Status
		resp, err := http.Get("http://" + listen + "/status")
		if err != nil {
			return st, err
		}
		defer resp.Body.Close()
		return st, json.NewDecoder(resp.Body).Decode(&st)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := status(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("webhook server not answering: %v\n%s", err, logs.String())
		}
	}

	sha := s.pushControlCommit("webhook e2e " + time.Now().Format(time.RFC3339Nano))
	body := fmt.Sprintf(`{"ref":"refs/heads/production","after":%q,"repository":{"name":"control"},"head_commit":{"id":%q}}`, sha, sha)
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+listen+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=" + strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("a wrongly signed push: HTTP %d, want 401", code)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(body))
	pushed := time.Now()
	if code := post("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("a signed push: HTTP %d, want 202\n%s", code, logs.String())
	}

	compilers := s.compilers()
	deployed := map[string]string{} // where r10k records the deployed commit, read once (puppet config print is slow)
	for _, c := range compilers {
		deployed[c] = strings.TrimSpace(s.ssh(c, "puppet config print codedir")) + "/environments/production/.r10k-deploy.json"
	}
	var on time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		behind := []string{}
		for _, c := range compilers {
			if !strings.Contains(s.ssh(c, "cat "+deployed[c]), sha) {
				behind = append(behind, c)
			}
		}
		if len(behind) == 0 {
			on = time.Since(pushed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 minutes after the push, %v are not on %s\n%s", behind, sha, logs.String())
		}
	}
	t.Logf("WEBHOOK: push event → all %d compilers on %.12s in %s", len(compilers), sha, on.Round(100*time.Millisecond))
	seconds(t, "webhook: push to every compiler on the commit", on)

	// /status records the deploy and each server's commit once it ends.
	var last *webhook.Record
	for deadline := time.Now().Add(2 * time.Minute); last == nil && time.Now().Before(deadline); time.Sleep(time.Second) {
		if st, err := status(); err == nil && len(st.Deploys) > 0 {
			last = st.Deploys[0]
		}
	}
	if last == nil || last.Result != "ok" || last.Commit != sha {
		t.Fatalf("GET /status after the deploy: %+v\n%s", last, logs.String())
	}
	for _, c := range compilers {
		if got := last.Servers[c+".lab.test"]; len(got) < 7 || !strings.HasPrefix(sha, got) {
			t.Errorf("GET /status: %s on %q, want %s (servers %v)", c, got, sha, last.Servers)
		}
	}
}

// pushControlCommit adds a commit to the control repository's production
// branch that changes no catalog (a file outside manifests and modules) and
// returns its id.
func (s *site) pushControlCommit(msg string) string {
	s.t.Helper()
	bare := s.l.ControlRepoDir()
	work := s.t.TempDir()
	git := func(args ...string) string {
		s.t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@lab.test",
			"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@lab.test", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			s.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("clone", "-q", "-b", "production", bare, ".")
	if err := os.WriteFile(filepath.Join(work, "PUSHED"), []byte(msg+"\n"), 0o644); err != nil {
		s.t.Fatal(err)
	}
	git("add", "PUSHED")
	git("commit", "-q", "-m", msg)
	git("push", "-q", "origin", "production")
	// the lab serves git's dumb HTTP protocol, which reads info/refs
	git("--git-dir", bare, "update-server-info")
	return git("rev-parse", "HEAD")
}

// compilers is the short names of the lab's compilers in s.inv; a site
// without one fails the test (every loop over them would pass empty).
func (s *site) compilers() []string {
	s.t.Helper()
	b, err := os.ReadFile(s.inv)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, h := range s.l.Hosts {
		if slices.Contains(h.Groups, "compilers") && bytes.Contains(b, []byte("{name: "+h.Name+",")) &&
			!bytes.Contains(b, []byte("spare:        {targets: [{name: "+h.Name)) {
			out = append(out, h.Short)
		}
	}
	if len(out) == 0 {
		s.t.Fatalf("no compiler of the lab is a compiler in %s", s.inv)
	}
	return out
}
