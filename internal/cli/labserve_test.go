package cli_test

import (
	"context"
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

// The lab's file server is `troupe lab serve-files DIR ADDR`, which `lab up`
// re-executes troupe with: it serves DIR on ADDR.
func TestLabServeFilesServes(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "debian", "Release"), "Suite: bookworm\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(troupeBin, "lab", "serve-files", dir, addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/debian/Release")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("troupe lab serve-files never answered on %s: %v", addr, err)
		}
	}
	if string(body) != "Suite: bookworm\n" {
		t.Fatalf("GET /debian/Release = %q", body)
	}
}

// Hidden: neither help nor the completion scripts offer it (beside the lab
// commands they do offer).
func TestLabServeFilesHidden(t *testing.T) {
	outputs := map[string]string{
		"help":     troupe(t, nil, "--help").stdout,
		"lab help": troupe(t, nil, "lab", "--help").stdout,
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		outputs[sh] = troupe(t, nil, "completion", sh).stdout
	}
	for name, out := range outputs {
		if !strings.Contains(out, "lab") || !strings.Contains(out, "status") {
			t.Errorf("%s: no lab commands in\n%s", name, out)
		}
		if strings.Contains(out, "serve-files") {
			t.Errorf("%s offers the hidden serve-files command", name)
		}
	}
}

// The old trigger, two environment variables read before the arguments,
// no longer turns troupe into a server: `troupe version` prints the version.
func TestLabServerEnvironmentNoLongerServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, troupeBin, "version", "--short")
	cmd.Env = append(os.Environ(), "TROUPE_LAB_SERVE_DIR="+t.TempDir(), "TROUPE_LAB_SERVE_ADDR=127.0.0.1:0")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("troupe version with the old server environment: %v, %q", err, out)
	}
}
