package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A figure is one measured result of a run, written where `just proof`
// reads it (docs/proof.md is made from these, never copied by hand).
type figure struct {
	Time      time.Time `json:"time"`
	Commit    string    `json:"commit"`
	Machine   string    `json:"machine"`
	Test      string    `json:"test"` // the (sub)test that measured it
	Name      string    `json:"name"`
	Value     float64   `json:"value"`
	Unit      string    `json:"unit"` // s, count, MiB, %
	Reproduce string    `json:"reproduce"`
}

var results struct {
	sync.Mutex
	commit, machine string
}

// noteCommit names the commit the figures come from, when the test binary
// starts: the code it was built from, not where HEAD is by the time the
// first figure is written (a commit made during a long run).
func noteCommit() {
	out, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	results.commit = strings.TrimSpace(string(out))
	results.machine = machine()
}

// record writes a figure to $TROUPE_RESULTS (default results/e2e.jsonl at
// the repository's root), one JSON object a line.
func record(t *testing.T, name string, value float64, unit string) {
	t.Helper()
	results.Lock()
	defer results.Unlock()
	root := repoRoot(t)
	path := envOr("TROUPE_RESULTS", filepath.Join(root, "results", "e2e.jsonl"))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Errorf("results: %v", err)
		return
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	suite := ""
	if parts := strings.Split(t.Name(), "/"); len(parts) > 1 {
		suite = parts[1]
	}
	b, _ := json.Marshal(figure{Time: time.Now().UTC(), Commit: results.commit, Machine: results.machine, Test: t.Name(),
		Name: name, Value: value, Unit: unit, Reproduce: "go test -count=1 -v -run '" + top + "/" + suite + "$' ./internal/e2e"})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Errorf("results: %v", err)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// seconds records a duration in seconds.
func seconds(t *testing.T, name string, d time.Duration) {
	t.Helper()
	record(t, name, d.Round(100*time.Millisecond).Seconds(), "s")
}

// machine names what ran the test: CPUs, memory, kernel.
func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			mem = f[1] + " kB"
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.Join([]string{runtime.GOOS + "/" + runtime.GOARCH, strconv.Itoa(runtime.NumCPU()) + " CPUs", mem, "kernel " + strings.TrimSpace(string(kernel))}, ", ")
}
