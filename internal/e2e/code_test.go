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

	post := func(body, sig string) int {
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
	// push commits to the control repository and sends its signed push
	// event; it returns the commit and when the event was accepted.
	push := func(msg string) (string, time.Time) {
		t.Helper()
		sha := s.pushControlCommit(msg + " " + time.Now().Format(time.RFC3339Nano))
		body := fmt.Sprintf(`{"ref":"refs/heads/production","after":%q,"repository":{"name":"control"},"head_commit":{"id":%q}}`, sha, sha)
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		pushed := time.Now()
		if code := post(body, "sha256="+hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
			t.Fatalf("a signed push: HTTP %d, want 202\n%s", code, logs.String())
		}
		return sha, pushed
	}
	if code := post(`{"ref":"refs/heads/production"}`, "sha256="+strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("a wrongly signed push: HTTP %d, want 401", code)
	}

	compilers := s.compilers()
	deployed := map[string]string{} // where r10k records the deployed commit, read once (puppet config print is slow)
	for _, c := range compilers {
		deployed[c] = strings.TrimSpace(s.ssh(c, "puppet config print codedir")) + "/environments/production/.r10k-deploy.json"
	}
	behind := func(sha string) []string {
		var out []string
		for _, c := range compilers {
			if !strings.Contains(s.ssh(c, "cat "+deployed[c]), sha) {
				out = append(out, c)
			}
		}
		return out
	}
	// landed waits until every compiler is on sha and /status records it.
	landed := func(sha string) time.Time {
		t.Helper()
		var at time.Time
		for deadline := time.Now().Add(5 * time.Minute); at.IsZero(); time.Sleep(500 * time.Millisecond) {
			if b := behind(sha); len(b) == 0 {
				at = time.Now()
			} else if time.Now().After(deadline) {
				t.Fatalf("5 minutes after the push, %v are not on %s\n%s", b, sha, logs.String())
			}
		}
		// /status records the deploy and each server's commit once it ends.
		var last *webhook.Record
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if st, err := status(); err == nil && len(st.Deploys) > 0 && st.Deploys[0].Commit == sha && st.Deploys[0].Result == "ok" {
				last = st.Deploys[0]
				break
			}
		}
		if last == nil {
			st, _ := status()
			t.Fatalf("GET /status after the deploy of %.12s: %+v\n%s", sha, st.Deploys, logs.String())
		}
		for _, c := range compilers {
			if got := last.Servers[c+".lab.test"]; len(got) < 7 || !strings.HasPrefix(sha, got) {
				t.Errorf("GET /status: %s on %q, want %s (servers %v)", c, got, sha, last.Servers)
			}
		}
		return at
	}

	sha, pushed := push("webhook e2e")
	on := landed(sha).Sub(pushed)
	t.Logf("WEBHOOK: push event → all %d compilers on %.12s in %s", len(compilers), sha, on.Round(100*time.Millisecond))
	seconds(t, "webhook: push to every compiler on the commit", on)

	webhookLockWait(ctx, t, s, push, behind, landed, status)
}

// webhookLockWait: a push that arrives while an operator's run holds the
// compilers' locks is not lost: /status shows it waiting with the holder,
// no compiler moves while the run goes on, and the deploy lands once the
// run has freed the locks, within the retry backoff's bound.
func webhookLockWait(ctx context.Context, t *testing.T, s *site, push func(string) (string, time.Time),
	behind func(string) []string, landed func(string) time.Time, status func() (webhook.Status, error)) {
	const marker = "/run/e2e-holding"
	content := s.contentPlan("hold", `name: hold
description: e2e - an operator's run that holds the compilers' locks for 20 seconds
steps:
  - id: hold
    targets: compilers
    command: "touch `+marker+` && sleep 20; rm -f `+marker+`"
`)
	compilers := s.compilers()
	held := make(chan run, 1)
	go func() { held <- s.troupeRun(ctx, "run", "hold", "--content", content) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		n := 0
		for _, c := range compilers {
			if _, rc := s.sshRC(c, "test -e "+marker); rc == 0 {
				n++
			}
		}
		if n == len(compilers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holding run did not reach its step on %d compilers in a minute", len(compilers)-n)
		}
	}

	sha, _ := push("webhook e2e, locks held")
	var waiting *webhook.Record
	var hold run
	for hold.wall == 0 {
		select {
		case hold = <-held:
		case <-time.After(time.Second):
			st, err := status()
			if err != nil {
				continue
			}
			// a deploy waiting for a lock is in the queue (deploys lists
			// the finished ones)
			for _, r := range st.Queued {
				if r.Commit != sha || r.Result != "waiting" {
					continue
				}
				if waiting == nil {
					// while the run holds the locks, no compiler moves
					if b := behind(sha); len(b) != len(compilers) {
						t.Errorf("compilers on %.12s while another run held their locks: %d of %d moved", sha, len(compilers)-len(b), len(compilers))
					}
				}
				waiting = r
			}
		}
	}
	freed := time.Now()
	if hold.code != 0 {
		t.Fatalf("the holding run: exit %d\n%s", hold.code, strings.Join(hold.with("failed"), "\n"))
	}
	if waiting == nil || waiting.Holder == "" {
		t.Fatalf("/status never showed the push waiting with the lock's holder while the run held the locks: %+v", waiting)
	}
	after := landed(sha).Sub(freed)
	// the retries back off up to 30 s; a deploy takes seconds
	if after > time.Minute {
		t.Errorf("the waiting deploy landed %s after the locks were freed, bound 1m", after.Round(100*time.Millisecond))
	}
	t.Logf("WEBHOOK LOCK WAIT: a push during a 20 s run holding the locks waited (holder %q, %d tries), landed %s after the run ended",
		waiting.Holder, waiting.Tries, after.Round(100*time.Millisecond))
	seconds(t, "webhook: a push that waited for the locks lands after they are freed", after)
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
