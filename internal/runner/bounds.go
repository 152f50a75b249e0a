package runner

import (
	"fmt"
	"unicode/utf8"
)

// Bounds on what a run keeps of a host's output. The transport captures a
// command's whole output while the step runs (a download reads a file
// through it); what a step then keeps for the rest of the run (its
// registered stdout and stderr) and what the journal records are bounded,
// the middle cut out: the head and the tail (where a verdict usually is)
// stay.
const (
	// keepLimit bounds the registered stdout and stderr kept in memory.
	keepLimit = 4 << 20
	// journalStringLimit bounds each string of a journaled value.
	journalStringLimit = 64 << 10
	// journalRecordLimit bounds a journal line; a record still over it
	// after its strings are clipped is written without its value.
	journalRecordLimit = 1 << 20
	// journalLineLimit is the longest line read back: longer is not a
	// record this version wrote (or the file is damaged).
	journalLineLimit = 4 << 20
)

// clip keeps the head and tail of s within limit bytes, with a marker
// saying how much was cut; cut reports whether it did.
func clip(s string, limit int) (out string, cut bool) {
	if len(s) <= limit {
		return s, false
	}
	half := limit / 2
	head, tail := half, len(s)-half
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + fmt.Sprintf("\n…[troupe: %d bytes cut]…\n", tail-head) + s[tail:], true
}

// clipValue clips every string in a JSON-shaped value (maps, lists,
// strings); cut reports whether any was.
func clipValue(v any, limit int) (any, bool) {
	switch x := v.(type) {
	case string:
		return clip(x, limit)
	case []any:
		cut := false
		out := make([]any, len(x))
		for i, e := range x {
			var c bool
			out[i], c = clipValue(e, limit)
			cut = cut || c
		}
		return out, cut
	case map[string]any:
		cut := false
		out := make(map[string]any, len(x))
		for k, e := range x {
			var c bool
			out[k], c = clipValue(e, limit)
			cut = cut || c
		}
		return out, cut
	}
	return v, false
}
