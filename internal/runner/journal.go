package runner

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/safefile"
	"github.com/troupe/troupe/internal/secret"
)

// journal is the NDJSON record of every host's result of every step, one
// file per plan and inventory, so `--resume` knows where a run stopped.
type journal struct {
	path      string
	plan      string
	inventory string // absolute path
	red       *secret.Redactor
	mu        sync.Mutex
	f         *os.File // nil under --noop: a dry run must not move the resume point
	prev      []record // the previous run, as the file held it before this one
	// unreadable is why the file could not be read (a line past
	// journalLineLimit, an I/O error): the run warns and sets it aside.
	unreadable error
}

type record struct {
	Type      string        `json:"type"` // start | result | end
	Time      time.Time     `json:"time"`
	Plan      string        `json:"plan,omitempty"`
	Inventory string        `json:"inventory,omitempty"`
	Step      string        `json:"step,omitempty"`
	Host      string        `json:"host,omitempty"`
	Status    report.Status `json:"status,omitempty"`
	Register  string        `json:"register,omitempty"`
	Value     any           `json:"value,omitempty"`
	Error     string        `json:"error,omitempty"`
	// Done: the step's work on this host is complete (changed, ok, or
	// skipped by its own conditions). A step skipped because the run never
	// reached it (--start-at) is not done, and only done steps are skipped
	// by --resume.
	Done bool `json:"done,omitempty"`
	// Truncated: Value or Error was clipped to the journal's bounds; a
	// resumed run must not register it as the step's result, so the step
	// is not skipped as done (see previous).
	Truncated bool `json:"truncated,omitempty"`
}

// done is what the previous run recorded for one host and step.
type done struct {
	status   report.Status
	register string
	value    any
}

// loadJournal finds the journal of this plan and inventory and reads the
// previous run from it; nothing is written until open, so a refused run
// leaves the journal as it was.
func loadJournal(stateDir, planName, invFile string, red *secret.Redactor) (*journal, error) {
	abs, _ := filepath.Abs(invFile)
	sum := sha256.Sum256([]byte(abs))
	j := &journal{
		path: filepath.Join(stateDir, "journal", fmt.Sprintf("%s-%x.ndjson", planName, sum[:6])),
		plan: planName, inventory: abs, red: red,
	}
	// A journal another user could plant or change would tell --resume
	// what to skip: it is read and written only in a trusted directory.
	if _, err := safefile.MkdirAll(filepath.Dir(j.path)); err != nil {
		return nil, &InputError{fmt.Errorf("journal: %w", err)}
	}
	prev, err := j.previousRecords()
	if err != nil {
		// never a dead end: the run goes on without the previous run, and
		// setAside moves the file out of the way
		j.unreadable, prev = err, nil
	}
	j.prev = prev
	return j, nil
}

// setAside renames an unreadable journal to PATH.corrupt-TIME, kept for a
// look; the next run starts a new one. It returns the warning to show.
func (j *journal) setAside(noop bool) string {
	if j.unreadable == nil {
		return ""
	}
	if noop {
		return fmt.Sprintf("journal %s cannot be read (%v): ignored; a run without --noop sets it aside", j.path, j.unreadable)
	}
	aside := j.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(j.path, aside); err != nil {
		return fmt.Sprintf("journal %s cannot be read (%v), nor set aside: %v", j.path, j.unreadable, err)
	}
	return fmt.Sprintf("journal %s cannot be read (%v): set aside as %s; this run starts a new one", j.path, j.unreadable, aside)
}

// open starts this run's records (not under --noop: a dry run must not move
// the resume point).
func (j *journal) open(noop bool) error {
	if noop {
		return nil
	}
	// a fresh file (O_EXCL, 0600) beside the journal, in a trusted directory
	f, err := safefile.CreateTemp(j.path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// Keep only the previous run in the file (it is what --resume reads),
	// then append this run after it; written beside and renamed, so a crash
	// never leaves a half-copied journal.
	enc := json.NewEncoder(f)
	for _, r := range j.prev {
		enc.Encode(r)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(f.Name(), j.path); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("journal: %w", err)
	}
	j.f = f
	j.write(record{Type: "start", Plan: j.plan, Inventory: j.inventory})
	return nil
}

func (j *journal) write(r record) {
	if j.f == nil {
		return
	}
	r.Time = time.Now().UTC()
	// Registered output and errors can carry secrets; masked here, they come
	// back masked to a resumed run's templates. The value goes through JSON
	// first so that actions' own types (structs, typed maps) are masked too.
	r.Error = j.red.String(r.Error)
	if r.Value != nil {
		var v any
		if b, err := json.Marshal(r.Value); err == nil && json.Unmarshal(b, &v) == nil {
			r.Value = j.red.Value(v)
		} else {
			r.Value = nil // not JSON: the result is recorded without it
		}
	}
	b := j.bounded(&r)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.f.Write(append(b, '\n'))
}

// bounded marshals r within the journal's bounds: long strings clipped,
// and a record still too long written without its value; either marks it
// Truncated.
func (j *journal) bounded(r *record) []byte {
	var cut bool
	if r.Error, cut = clip(r.Error, journalStringLimit); cut {
		r.Truncated = true
	}
	if r.Value, cut = clipValue(r.Value, journalStringLimit); cut {
		r.Truncated = true
	}
	b, _ := json.Marshal(r)
	if len(b) > journalRecordLimit {
		r.Value, r.Truncated = nil, true
		b, _ = json.Marshal(r)
	}
	return b
}

func (j *journal) result(step, host string, st report.Status, done bool, reg string, val any, err string) {
	j.write(record{Type: "result", Step: step, Host: host, Status: st, Done: done, Register: reg, Value: val, Error: err})
}

func (j *journal) end(err error) {
	r := record{Type: "end", Status: report.Unchanged}
	if err != nil {
		r.Status, r.Error = report.Failed, err.Error()
	}
	j.write(r)
}

func (j *journal) close() {
	if j.f != nil {
		j.f.Close()
	}
}

// previousRecords returns the records of the last complete or interrupted
// run in the file (from its last "start").
func (j *journal) previousRecords() ([]record, error) {
	f, err := os.Open(j.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), journalLineLimit)
	for sc.Scan() {
		var r record
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn last line from a crash
		}
		if r.Type == "start" {
			recs = recs[:0]
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.path, err)
	}
	return recs, nil
}

// previous maps host → step → result of the last run, for --resume: only
// the steps that run recorded as done. It is read before this run's start
// record is appended.
func (j *journal) previous() (map[string]map[string]done, error) {
	recs := j.prev
	if len(recs) == 0 {
		return nil, fmt.Errorf("--resume: no previous run of this plan with this inventory (journal %s)", j.path)
	}
	last := recs[len(recs)-1]
	if last.Type == "end" && last.Status != report.Failed {
		return nil, fmt.Errorf("--resume: the previous run completed successfully; nothing to resume (journal %s)", j.path)
	}
	out := map[string]map[string]done{}
	for _, r := range recs {
		if r.Type != "result" || !r.Done || r.Status == report.Failed || r.Truncated {
			continue // a clipped result is not the step's: it runs again
		}
		if out[r.Host] == nil {
			out[r.Host] = map[string]done{}
		}
		out[r.Host][r.Step] = done{status: r.Status, register: r.Register, value: r.Value}
	}
	return out, nil
}
