package status

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/sshtest"
	"github.com/troupe/troupe/internal/transport"
)

// flood runs its own command instead of the probe script, with the probe's
// other settings (MaxOutput), and records what the Result kept.
type flood struct {
	transport.Conn
	command string
	mu      *sync.Mutex
	kept    *int
}

func (f flood) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	cmd.Command = f.command
	res, err := f.Conn.Run(ctx, cmd)
	f.mu.Lock()
	*f.kept += len(res.Stdout) + len(res.Stderr)
	f.mu.Unlock()
	return res, err
}

// A host answering 100 MB (the probe's answer is about 3 KB) over a real
// SSH connection: at most MaxAnswer of each stream is kept, the row says
// the host sent too much, the reading is unhealthy, and the process's peak
// memory stays far below the answer's size.
func TestHostSendingTooMuch(t *testing.T) {
	srv := sshtest.StartServer(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	y := fmt.Sprintf(`version: 1
vars: {flavor: debian}
config:
  ssh: {user: %s, port: %d, private_key: %s, known_hosts: %s}
groups:
  agents: {targets: [{name: agent.test, address: 127.0.0.1}]}
`, srv.Config.User, srv.Port, srv.KeyFile, srv.KnownHosts)
	if err := os.WriteFile(inv, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := inventory.Load(inv)
	if err != nil {
		t.Fatal(err)
	}
	read := func(command string) (*Site, int) {
		var mu sync.Mutex
		kept := 0
		site, err := Collect(context.Background(), in, Options{Timeout: time.Minute, Now: func() time.Time { return now },
			Dial: func(ctx context.Context, cfg transport.Config) (transport.Conn, error) {
				c, err := transport.Dial(ctx, cfg)
				if err != nil {
					return nil, err
				}
				return flood{Conn: c, command: command, mu: &mu, kept: &kept}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return site, kept
	}

	// the control: an answer under the bound is read whole and not flagged
	small := fixture(t, "agent-healthy")
	site, kept := read("cat <<'EOF'\n" + small + "\nEOF")
	if h := site.Hosts[0]; h.Error != "" || kept != len(small)+1 || h.Cert == nil || h.Cert.Error != "" {
		t.Fatalf("a normal answer: kept %d of %d bytes, %+v %+v", kept, len(small)+1, h.Error, h.Cert)
	}

	resetPeak(t)
	before := peakRSS(t)
	const size = 100 << 20
	site, kept = read(fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; head -c %d /dev/zero | tr '\\0' y >&2", size, size))
	after := peakRSS(t)
	h := site.Hosts[0]
	if kept > 2*MaxAnswer {
		t.Errorf("kept %d bytes of a %d-byte answer, want at most %d", kept, 2*size, 2*MaxAnswer)
	}
	if kept < MaxAnswer {
		t.Errorf("kept only %d bytes: did the answer arrive?", kept)
	}
	if !strings.HasPrefix(h.Error, "sent too much") || site.Healthy || h.Level != Bad {
		t.Errorf("row: error %q, level %s, site healthy %v", h.Error, h.Level, site.Healthy)
	}
	if !strings.Contains(plainTable(site), "agent.test host: sent too much: more than 4 MiB of probe output") {
		t.Errorf("no problem line:\n%s", plainTable(site))
	}
	t.Logf("peak RSS %d MiB before, %d MiB after reading 2×%d MiB", before>>20, after>>20, size>>20)
	// The race detector's shadow memory multiplies what every allocation
	// costs; unbounded, the answer took 743 MiB without it.
	bound := int64(64 << 20)
	if raceEnabled {
		bound = 320 << 20
	}
	if before > 0 && int64(after-before) > bound {
		t.Errorf("peak RSS grew by %d MiB for a bounded answer (bound %d MiB)", (after-before)>>20, bound>>20)
	}
}

// resetPeak resets the process's peak RSS (VmHWM), Linux only.
func resetPeak(t *testing.T) {
	if runtime.GOOS != "linux" {
		return
	}
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS: %v", err)
	}
}

// peakRSS is VmHWM in bytes, 0 where unknown.
func peakRSS(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n << 10
		}
	}
	return 0
}
