package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/report"
)

// Under --noop, a host the run showed changes on (and did not make) may
// lack what they would bring: a read there that finds its program missing
// (exit 127) is skipped, saying why, and a wait that is not ready does not
// wait. On a host without shown changes the same read fails and the wait
// waits: the dry run still judges the host as it is.
func TestNoopAfterShownChanges(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: install
    targets: web
    when: '{{ eq .host.name "h1" }}'
    command: "touch $H/installed"
  - id: read
    targets: web
    read_cmd: {cmd: "echo 'sh: 1: puppet: not found' >&2; exit 127"}
    ignore_errors: true
  - id: started
    targets: web
    wait: {command: "false", timeout: 1s, interval: 100ms}
`, "h1", "h2")
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Noop = true })
	got := rec.results()
	// a command is only shown under --noop (would run)
	if !strings.HasPrefix(got["install h1"], "ok") || !strings.HasPrefix(got["install h2"], "skipped") {
		t.Fatalf("install: %v", got)
	}
	if r := got["read h1"]; !strings.Contains(r, "skipped") || !strings.Contains(r, "--noop: sh: 1: puppet: not found (an earlier step would install it)") {
		t.Errorf("read on h1 (install shown): %q", r)
	}
	failedOnH2 := false // ignore_errors: the failure is a warning
	for _, e := range rec.kinds(report.Warning) {
		failedOnH2 = failedOnH2 || e.Step == "read" && e.Host == "h2" && strings.Contains(e.Text, "exit status 127")
	}
	if r := got["read h2"]; strings.Contains(r, "skipped") || !failedOnH2 {
		t.Errorf("read on h2 (nothing shown): %q, warnings %v: want the failure", r, rec.kinds(report.Warning))
	}
	if r := got["started h1"]; !strings.Contains(r, "skipped") || !strings.Contains(r, "the run would wait up to 1s") {
		t.Errorf("wait on h1: %q", r)
	}
	if r := got["started h2"]; !strings.Contains(r, "failed") || err == nil || !strings.Contains(err.Error(), "not ready after 1s") {
		t.Errorf("wait on h2: %q, run error %v", r, err)
	}
	// a real run is never lenient
	f2 := setup(t, "name: p\nsteps: [{id: read, targets: web, read_cmd: {cmd: 'exit 127'}}]\n", "h1")
	if _, _, err := f2.run(context.Background(), nil); err == nil {
		t.Error("a real run skipped a failed read")
	}
}
