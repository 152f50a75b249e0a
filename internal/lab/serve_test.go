package lab

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServerReexec: the file server is this test binary re-executed with
// ServeArgs (answered by MaybeServe in TestMain), as troupe is re-executed
// with its hidden `lab serve-files` command. No lab needed: loopback only.
func TestServerReexec(t *testing.T) {
	work := t.TempDir()
	if err := os.MkdirAll(wwwDir(work), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wwwDir(work), "probe"), []byte("served"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	if err := startServer(work, addr, "/probe"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(work) })
	pid := readPID(serverPIDFile(work))
	if !serverAlive(work) || !isOurServer(pid, work) {
		t.Fatalf("server pid %d not recognised as this lab's", pid)
	}
	if isOurServer(pid, t.TempDir()) {
		t.Fatalf("server pid %d taken for another lab's", pid)
	}
	resp, err := http.Get("http://" + addr + "/probe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "served" {
		t.Fatalf("GET /probe = %q", body)
	}
	stopServer(work)
	if !waitGone(pid, 5*time.Second) || serverAlive(work) {
		t.Fatalf("server pid %d still there after stopServer", pid)
	}
}

// A server started by a troupe from before `lab serve-files` is known by its
// environment, so `lab down` after an upgrade still stops it.
func TestServerRecognisedByOldEnvironment(t *testing.T) {
	work := t.TempDir()
	start := func(env string) int {
		cmd := exec.Command("sleep", "60")
		cmd.Env = append(os.Environ(), env)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitExeced(t, cmd.Process.Pid, "sleep")
		return cmd.Process.Pid
	}
	if old := start("TROUPE_LAB_SERVE_DIR=" + wwwDir(work)); !isOurServer(old, work) {
		t.Errorf("old-style server of this lab not recognised")
	}
	if other := start("TROUPE_LAB_SERVE_DIR=" + wwwDir(t.TempDir())); isOurServer(other, work) {
		t.Errorf("another lab's old-style server taken for this one's")
	}
}

// waitExeced waits until pid runs name. Start returns once the child has
// released its parent's memory in execve, a moment before the kernel has set
// up the new program's arguments and environment; /proc/PID/environ read in
// that window is empty (seen under load in CI).
func waitExeced(t *testing.T, pid int, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(b), name+"\x00") {
			return
		}
	}
	t.Fatalf("pid %d does not run %s after 5s", pid, name)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
