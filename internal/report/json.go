package report

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"

	"github.com/troupe/troupe/internal/secret"
)

// JSON writes NDJSON: one event object per line and nothing else. Debug
// events are left out (they belong to the debug log).
type JSON struct {
	mu     sync.Mutex
	w      io.Writer
	red    *secret.Redactor
	closed bool
	err    error // first write error
}

// jsonEvent adds the duration in seconds for consumers that do not want to
// divide nanoseconds.
type jsonEvent struct {
	Event
	DurationS float64 `json:"duration_s,omitempty"`
}

// NewJSON returns a JSON reporter writing to w.
func NewJSON(w io.Writer, red *secret.Redactor) Reporter {
	return &JSON{w: w, red: red}
}

// Emit writes e as one line.
func (j *JSON) Emit(e Event) {
	if e.Kind == Debug {
		return
	}
	e = redact(j.red, e)
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // Encode ends the object with "\n"
	enc.SetEscapeHTML(false)   // keep "<" and "&" in commands and diffs readable
	if err := enc.Encode(jsonEvent{Event: e, DurationS: e.Duration.Seconds()}); err != nil {
		return // an Event of strings, times and ints always encodes
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.err != nil {
		return
	}
	_, j.err = j.w.Write(b.Bytes())
}

// Close returns the first write error; w is the caller's to close.
func (j *JSON) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	return j.err
}
