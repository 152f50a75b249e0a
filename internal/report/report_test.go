package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/secret"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const hunter2 = "hunter2-s3cr3t"

// script is a short run: output lines, a change, a skip with its reason, a
// noop command and diff, a warning, a failure with remote stderr. The secret
// appears in every string field that can carry it.
func script() []Event {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hosts := []string{"compile1.lab.test", "compile2.lab.test", "primary.lab.test"}
	return []Event{
		{Time: t0, Kind: RunStart, Plan: "upgrade-compilers", Hosts: hosts},
		{Kind: StepStart, Step: "compilers/drain", Title: "Drain the compiler in HAProxy", Hosts: hosts[:2]},
		{Kind: HostLine, Step: "compilers/drain", Host: hosts[0], Stream: "stdout", Text: "server compile1 set to drain\n"},
		{Kind: HostLine, Step: "compilers/drain", Host: hosts[1], Stream: "stderr", Text: "\x1b[31mwarning\x1b[0m: slow socket\r\n"},
		{Kind: HostResult, Step: "compilers/drain", Host: hosts[0], Status: Changed, Duration: 2100 * time.Millisecond},
		{Kind: HostResult, Step: "compilers/drain", Host: hosts[1], Status: Unchanged, Duration: 340 * time.Millisecond},
		{Kind: StepEnd, Step: "compilers/drain", Duration: 2200 * time.Millisecond},
		{Kind: StepStart, Step: "compilers/install", Title: "Install puppetserver", Hosts: hosts[:2]},
		{Kind: HostResult, Step: "compilers/install", Host: hosts[0], Status: Skipped, Reason: "creates /opt/puppetlabs/server exists"},
		{Kind: WouldRun, Step: "compilers/install", Host: hosts[1], Text: "apt-get install -y puppetserver --password=" + hunter2},
		{Kind: WouldWrite, Step: "compilers/install", Host: hosts[1], Text: "/etc/puppetlabs/puppet/puppet.conf",
			Diff: "--- /etc/puppetlabs/puppet/puppet.conf\n+++ /etc/puppetlabs/puppet/puppet.conf (new)\n@@ -1,2 +1,2 @@\n [main]\n-server = old.lab.test\n+server = primary.lab.test\n+password = " + hunter2 + "\n"},
		{Kind: HostResult, Step: "compilers/install", Host: hosts[1], Status: Changed, Duration: 61500 * time.Millisecond},
		{Kind: StepEnd, Step: "compilers/install", Duration: 61600 * time.Millisecond},
		{Kind: Warning, Host: hosts[1], Text: "puppet agent is disabled: token " + hunter2},
		{Kind: Debug, Host: hosts[1], Text: "ssh: exit 0 for " + hunter2},
		{Kind: StepStart, Step: "primary/restart", Title: "Restart puppetserver", Hosts: hosts[2:]},
		{Kind: HostLine, Step: "primary/restart", Host: hosts[2], Stream: "stdout", Text: "stopping with " + hunter2},
		{Kind: HostResult, Step: "primary/restart", Host: hosts[2], Status: Failed, Duration: 3 * time.Second,
			Error: "systemctl restart puppetserver: exit status 1", Stderr: "Job for puppetserver.service failed.\nsee journalctl -xe (pw " + hunter2 + ")\n"},
		{Kind: StepEnd, Step: "primary/restart", Duration: 3 * time.Second},
		{Kind: RunEnd, Status: Failed, Duration: 67 * time.Second, Error: "1 host failed"},
	}
}

func newRedactor() *secret.Redactor {
	red := &secret.Redactor{}
	red.Add(hunter2)
	return red
}

func runHuman(t *testing.T, opts HumanOptions) string {
	t.Helper()
	var buf bytes.Buffer
	r := NewHuman(&buf, newRedactor(), opts)
	for _, e := range script() {
		r.Emit(e)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var ansiEscape = regexp.MustCompile("\x1b\\[")

func TestHumanGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts HumanOptions
	}{
		{"human_verbose", HumanOptions{Verbose: true, LogPath: "/var/lib/troupe/logs/troupe-20260301-120000-42.log"}},
		{"human_quiet", HumanOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CLICOLOR_FORCE", "") // auto colour must find no terminal
			got := runHuman(t, tc.opts)
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (rerun with -update to accept):\n%s", golden, got)
			}
		})
	}
}

func TestHumanPlainHasNoEscapes(t *testing.T) {
	for _, color := range []string{"", "auto", "never"} {
		t.Setenv("CLICOLOR_FORCE", "")
		out := runHuman(t, HumanOptions{Verbose: true, Color: color})
		if ansiEscape.MatchString(out) {
			t.Errorf("Color %q on a bytes.Buffer wrote escape codes:\n%q", color, out)
		}
		// Non-TTY tables use an ASCII border, for CI logs.
		if strings.ContainsAny(out, "─│╭╮╰╯┼") {
			t.Errorf("Color %q: box-drawing characters on a non-terminal:\n%s", color, out)
		}
	}
}

func TestHumanNoColorBeatsForce(t *testing.T) {
	t.Setenv("CLICOLOR_FORCE", "1")
	t.Setenv("NO_COLOR", "1")
	if out := runHuman(t, HumanOptions{Verbose: true}); ansiEscape.MatchString(out) {
		t.Errorf("NO_COLOR ignored:\n%q", out)
	}
}

func TestHumanColorAlways(t *testing.T) {
	out := runHuman(t, HumanOptions{Verbose: true, Color: "always"})
	if !ansiEscape.MatchString(out) {
		t.Fatalf("Color always wrote no escape codes:\n%s", out)
	}
	// Same text as plain once the codes are gone, apart from no colour.
	plain := runHuman(t, HumanOptions{Verbose: true, Color: "never"})
	if stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out, ""); stripped != plain {
		t.Errorf("coloured output differs from plain beyond escape codes:\n%s\n---\n%s", stripped, plain)
	}
	// Each host keeps its colour: the same host renders the same way twice.
	a := NewHuman(&bytes.Buffer{}, nil, HumanOptions{Color: "always"}).(*Human)
	if a.host("compile1") != a.host("compile1") || a.host("compile1") == a.host("compile3") {
		t.Errorf("host colours not deterministic per host: %q %q", a.host("compile1"), a.host("compile3"))
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewJSON(&buf, newRedactor())
	evs := script()
	for _, e := range evs {
		r.Emit(e)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	var n int
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", n+1, err, sc.Text())
		}
		if dec.More() {
			t.Fatalf("line %d has more than one value: %q", n+1, sc.Text())
		}
		if m["event"] == "" || m["time"] == "" {
			t.Errorf("line %d lacks event or time: %v", n+1, m)
		}
		if m["event"] == string(HostResult) && m["status"] == string(Changed) && m["host"] == "compile1.lab.test" {
			if m["duration_s"] != 2.1 || m["duration_ns"] != float64(2100*time.Millisecond) {
				t.Errorf("durations: %v", m)
			}
		}
		n++
	}
	if want := len(evs) - 1; n != want { // the Debug event stays out
		t.Errorf("%d lines, want %d", n, want)
	}
}

func TestLogFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := DefaultLogPath(dir)
	if !regexp.MustCompile(`/state/logs/troupe-\d{8}-\d{6}-\d+\.log$`).MatchString(path) {
		t.Errorf("DefaultLogPath = %s", path)
	}
	l, err := NewLog(path, newRedactor())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range script() {
		l.Emit(e)
	}
	l.Logf("connecting to %s with password %s", "primary.lab.test", hunter2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	b, _ := os.ReadFile(path)
	out := string(b)
	for _, want := range []string{
		"2026-03-01T12:00:00.000Z run_start plan=upgrade-compilers hosts=compile1.lab.test,compile2.lab.test,primary.lab.test\n",
		` debug host=compile2.lab.test text="ssh: exit 0 for ********"`,
		` host_line step=compilers/drain host=compile2.lab.test stream=stderr text="warning: slow socket\n"`,
		"status=failed duration=3s error=\"systemctl restart puppetserver: exit status 1\"\n    stderr:\n    | Job for puppetserver.service failed.\n",
		"    diff:\n    | --- /etc/puppetlabs/puppet/puppet.conf\n",
		` debug text="connecting to primary.lab.test with password ********"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRedaction checks that the secret never reaches any output. Only whole
// occurrences within one field are masked (see redact).
func TestRedaction(t *testing.T) {
	var human, colour, js bytes.Buffer
	path := filepath.Join(t.TempDir(), "logs", "x.log")
	red := newRedactor()
	l, err := NewLog(path, red)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCounter(red)
	r := Multi(NewHuman(&human, red, HumanOptions{Verbose: true}),
		NewHuman(&colour, red, HumanOptions{Verbose: true, Color: "always"}),
		NewJSON(&js, red), l, c, nil)
	evs := script()
	// The secret in every string field, host names included.
	evs = append(evs[:len(evs)-1], Event{Kind: HostResult, Plan: hunter2, Step: hunter2, Title: hunter2,
		Host: "host-" + hunter2, Hosts: []string{hunter2}, Stream: hunter2, Text: hunter2, Diff: hunter2,
		Status: Failed, Reason: hunter2, Error: hunter2, Stderr: hunter2}, evs[len(evs)-1])
	for _, e := range evs {
		r.Emit(e)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	logged, _ := os.ReadFile(path)
	for name, out := range map[string]string{"human": human.String(), "colour": colour.String(),
		"json": js.String(), "log": string(logged), "counter": fmt.Sprint(c.Failures(), c.Hosts())} {
		if strings.Contains(out, hunter2) {
			t.Errorf("%s output leaks the secret:\n%s", name, out)
		}
		if !strings.Contains(out, secret.Mask) {
			t.Errorf("%s output shows no mask; did the events arrive?", name)
		}
	}
	if evs[len(evs)-2].Hosts[0] != hunter2 {
		t.Error("redaction wrote into the caller's Hosts slice")
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter(nil)
	for _, e := range script() {
		c.Emit(e)
	}
	if got := c.FailedHosts(); len(got) != 1 || got[0] != "primary.lab.test" {
		t.Errorf("FailedHosts = %v", got)
	}
	f := c.Failures()
	if len(f) != 1 || f[0].Step != "primary/restart" || !strings.Contains(f[0].Error, "exit status 1") {
		t.Errorf("Failures = %+v", f)
	}
	want := HostCounts{Host: "total", Changed: 2, OK: 1, Skipped: 1, Failed: 1, Duration: 2100*time.Millisecond + 340*time.Millisecond + 61500*time.Millisecond + 3*time.Second}
	if got := c.Total(); got != want {
		t.Errorf("Total = %+v, want %+v", got, want)
	}
	if hs := c.Hosts(); len(hs) != 3 || hs[0].Host != "compile1.lab.test" || hs[0].Changed != 1 || hs[0].Skipped != 1 {
		t.Errorf("Hosts = %+v", hs)
	}
}

// TestConcurrentEmit runs under -race (just unit runs this package so):
// many hosts emitting at once must not race and must not interleave within
// a line.
func TestConcurrentEmit(t *testing.T) {
	var human, js bytes.Buffer
	l, err := NewLog(filepath.Join(t.TempDir(), "c.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Multi(NewHuman(&human, nil, HumanOptions{Verbose: true}), NewJSON(&js, nil), l, NewCounter(nil))
	const hosts, linesPer = 16, 50
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() {
			host := fmt.Sprintf("host%02d", i)
			for j := range linesPer {
				r.Emit(Event{Kind: HostLine, Host: host, Text: fmt.Sprintf("line %d of %s", j, host)})
			}
			r.Emit(Event{Kind: HostResult, Host: host, Status: Changed, Duration: time.Second})
		})
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^(host\d\d) \| line \d+ of (host\d\d)$`)
	var n int
	for _, l := range strings.Split(human.String(), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			if m[1] != m[2] {
				t.Errorf("interleaved line %q", l)
			}
			n++
		}
	}
	if n != hosts*linesPer {
		t.Errorf("%d host lines, want %d", n, hosts*linesPer)
	}
	if got := strings.Count(js.String(), "\n"); got != hosts*(linesPer+1) {
		t.Errorf("%d JSON lines, want %d", got, hosts*(linesPer+1))
	}
}

// The debug log is never opened through a link, nor in a directory other
// users can write in; a proper directory (the control) takes it.
func TestLogRefusesLinksAndUnsafeDirectories(t *testing.T) {
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("original"), 0o644)
	logs := filepath.Join(t.TempDir(), "logs")
	os.Mkdir(logs, 0o700)
	link := filepath.Join(logs, "troupe.log")
	os.Symlink(target, link)
	if l, err := NewLog(link, newRedactor()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("opened through a link: %v", err)
		if l != nil {
			l.Close()
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("written through the link: %q", b)
	}

	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	if _, err := NewLog(filepath.Join(shared, "logs", "x.log"), newRedactor()); err == nil || !strings.Contains(err.Error(), shared+": it is world-writable") {
		t.Errorf("a log under a world-writable directory: %v", err)
	}
	if exists, _ := filepath.Glob(filepath.Join(shared, "*")); len(exists) != 0 {
		t.Errorf("made %v", exists)
	}

	l, err := NewLog(filepath.Join(logs, "ok.log"), newRedactor())
	if err != nil {
		t.Fatal(err)
	}
	l.Logf("hello")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(logs, "ok.log")); !strings.Contains(string(b), "hello") {
		t.Errorf("log holds %q", b)
	}
}
