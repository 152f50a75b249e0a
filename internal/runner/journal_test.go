package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
)

// A 20 MB registered answer: the run keeps a bounded copy (head and tail),
// the journal a smaller one marked truncated, so later runs read the
// journal (--noop included) and --resume runs that step again instead of
// registering the clipped record.
func TestJournalBoundsALargeRegisteredAnswer(t *testing.T) {
	f := setup(t, `name: p
steps:
  - id: big
    targets: web
    command: "head -c 20000000 /dev/zero | tr '\\0' a; echo; echo VERDICT"
    register: big
  - id: use
    targets: web
    command: 'echo "{{ len .registered.big.stdout }} {{ contains "VERDICT" .registered.big.stdout }}" > $H/seen'
  - id: gate
    targets: web
    command: 'test ! -e $H/break'
`, "h1")
	os.WriteFile(filepath.Join(f.hostDir("h1"), "break"), nil, 0o644)
	_, sum, err := f.run(context.Background(), nil)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("want the gate's failure, got %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(f.hostDir("h1"), "seen"))
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		t.Fatalf("seen %q", b)
	}
	n, _ := strconv.Atoi(fields[0])
	if n < keepLimit || n > keepLimit+100 || fields[1] != "true" {
		t.Errorf("kept stdout of %d bytes (want about %d), tail kept: %s", n, keepLimit, fields[1])
	}
	fi, err := os.Stat(sum.Journal)
	if err != nil || fi.Size() > 2*journalRecordLimit {
		t.Fatalf("journal %v, %v: want it bounded", fi, err)
	}
	j, _ := os.ReadFile(sum.Journal)
	if !strings.Contains(string(j), `"truncated":true`) || !strings.Contains(string(j), "bytes cut]") {
		t.Error("the clipped record is not marked")
	}

	// --noop reads the journal
	if _, _, err := f.run(context.Background(), func(o *Options) { o.Noop = true }); err != nil {
		t.Fatalf("--noop after a large answer: %v", err)
	}
	// --resume runs big again: its journaled value is not its result
	os.Remove(filepath.Join(f.hostDir("h1"), "break"))
	os.Remove(filepath.Join(f.hostDir("h1"), "seen"))
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Resume = true })
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.results()["big h1"]; strings.HasPrefix(got, "skipped") {
		t.Errorf("--resume registered a clipped record: big %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(f.hostDir("h1"), "seen")); !strings.HasSuffix(strings.TrimSpace(string(b)), "true") {
		t.Errorf("after --resume the step saw %q", b)
	}
}

// A journal that cannot be read (here a line of 20 MB, as older versions
// wrote) is no dead end: --noop warns and leaves it, a run warns, sets it
// aside as .corrupt-TIME and starts a new one.
func TestUnreadableJournalIsSetAside(t *testing.T) {
	f := setup(t, `name: p
steps:
  - {id: one, targets: web, command: "true"}
`, "h1")
	_, sum, err := f.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	huge := `{"type":"result","step":"one","host":"h1","value":"` + strings.Repeat("a", 20<<20) + `"}` + "\n"
	if err := os.WriteFile(sum.Journal, []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	warned := func(rec *recorder, what string) bool {
		for _, e := range rec.kinds(report.Warning) {
			if strings.Contains(e.Text, sum.Journal) && strings.Contains(e.Text, what) {
				return true
			}
		}
		return false
	}
	rec, _, err := f.run(context.Background(), func(o *Options) { o.Noop = true })
	if err != nil || !warned(rec, "cannot be read") {
		t.Fatalf("--noop: %v, warnings %v", err, rec.kinds(report.Warning))
	}
	if fi, _ := os.Stat(sum.Journal); fi == nil || fi.Size() < 20<<20 {
		t.Error("--noop moved or rewrote the journal")
	}
	rec, _, err = f.run(context.Background(), nil)
	if err != nil || !warned(rec, "set aside as "+sum.Journal+".corrupt-") {
		t.Fatalf("run: %v, warnings %v", err, rec.kinds(report.Warning))
	}
	aside, _ := filepath.Glob(sum.Journal + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("set aside: %v", aside)
	}
	if fi, _ := os.Stat(aside[0]); fi == nil || fi.Size() < 20<<20 {
		t.Error("the set-aside file is not the old journal")
	}
	if j, err := os.ReadFile(sum.Journal); err != nil || len(j) > 4096 || !strings.Contains(string(j), `"step":"one"`) {
		t.Errorf("new journal %d bytes, %v", len(j), err)
	}
	// and it reads back: nothing more to warn about
	rec, _, err = f.run(context.Background(), nil)
	if err != nil || len(rec.kinds(report.Warning)) != 0 {
		t.Errorf("next run: %v, warnings %v", err, rec.kinds(report.Warning))
	}
}

const touchPlan = `name: p
steps:
  - id: a
    targets: web
    command: "touch $H/ran"
`

// A link planted at the journal's old fixed ".new" name (and at the journal
// itself) is replaced, not written through; the journal is a fresh 0600 file.
func TestJournalNeverWritesThroughALink(t *testing.T) {
	f := setup(t, touchPlan, "web1")
	j, err := loadJournal(f.state, "p", f.inv.File, &secret.Redactor{})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("original"), 0o644)
	for _, p := range []string{j.path + ".new", j.path} {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "original" {
		t.Errorf("the journal went through the link: %q", b)
	}
	fi, err := os.Lstat(j.path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal %s: %v, %v; want a regular file 0600", j.path, fi.Mode(), err)
	}
	if b, _ := os.ReadFile(j.path); !strings.Contains(string(b), `"type":"start"`) || !strings.Contains(string(b), `"step":"a"`) {
		t.Errorf("journal holds:\n%s", b)
	}
}

// A state directory other users can write in, or another user's, is
// refused before any host is touched; a proper one (the control) is used.
func TestUnsafeStateDirRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   os.FileMode
		owner  int
		reason string
	}{
		{"world-writable", 0o777, 0, "world-writable (mode 0777)"},
		{"another user's", 0o700, 65534, "owned by uid 65534"},
		{"control", 0o700, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, touchPlan, "web1")
			os.Mkdir(f.state, c.mode)
			os.Chmod(f.state, c.mode)
			os.Chown(f.state, c.owner, c.owner)
			_, _, err := f.run(context.Background(), nil)
			ran := exists(filepath.Join(f.hostDir("web1"), "ran"))
			if c.reason == "" {
				if err != nil || !ran {
					t.Fatalf("proper state dir: %v (ran %v)", err, ran)
				}
				return
			}
			var bad *InputError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), f.state) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("got %v; want an input error naming %s (%s)", err, f.state, c.reason)
			}
			if ran || exists(filepath.Join(f.state, "journal")) {
				t.Errorf("refused, yet the step ran (%v) or the journal was made", ran)
			}
		})
	}
}
