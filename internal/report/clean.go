package report

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Clean is the one cleaner for text that came from a host (command output,
// error messages, probe answers): what is left cannot drive, hide from or
// rewrite the operator's terminal. It keeps printable text, tabs and
// newlines, and removes:
//
//   - escape sequences: CSI (colours, cursor moves, "\e[2J" clear), OSC,
//     DCS, SOS, PM and APC strings (window titles, hyperlinks), whether
//     terminated or cut off, and two-character escapes ("\ec" reset);
//   - every other C0 control, DEL and every C1 control (U+0080–U+009F,
//     U+009B is a CSI by itself): a carriage return or backspace would let
//     a host overwrite the line's host prefix, BEL rings;
//   - bidirectional marks, embeddings, overrides and isolates (U+061C,
//     U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which reorder what is
//     shown;
//
// and replaces invalid UTF-8 with U+FFFD. Callers that print several lines
// split on "\n" after cleaning so each line gets its own prefix (Lines).
func Clean(s string) string {
	if isClean(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += skipEscape(s[i+n:]) + n
			continue
		case r == 0x9b: // 8-bit CSI
			i += skipCSI(s[i+n:]) + n
			continue
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // 8-bit DCS, SOS, OSC, PM, APC
			i += skipString(s[i+n:]) + n
			continue
		case dropped(r):
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// Lines cleans s and splits it into lines, without the final newline: one
// line per "\n" so every line can be printed under its own prefix.
func Lines(s string) []string {
	s = strings.TrimRight(Clean(s), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// isClean is the fast path: plain printable ASCII, tabs and newlines.
func isClean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7f || (c < 0x20 && c != '\t' && c != '\n') {
			return false
		}
	}
	return true
}

// dropped: the controls and format characters Clean removes on their own.
func dropped(r rune) bool {
	switch {
	case r == '\t', r == '\n':
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// skipEscape is the length of the rest of an escape sequence after ESC.
func skipEscape(s string) int {
	if s == "" {
		return 0
	}
	switch c := s[0]; {
	case c == '[':
		return 1 + skipCSI(s[1:])
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		return 1 + skipString(s[1:])
	case c >= 0x20 && c <= 0x2f: // intermediates, then a final byte: "\e(B"
		i := 0
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // "\ec" reset, "\e7" save cursor ...
		return 1
	}
	return 0 // ESC before anything else: only the ESC goes
}

// skipCSI is the length of a CSI's parameters, intermediates and final byte.
// A sequence cut by the end of the text or by another character is
// dropped up to there.
func skipCSI(s string) int {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString is the length of an OSC/DCS/... string up to and including its
// terminator (BEL, ESC \ or the 8-bit ST). An unterminated string ends at
// the next newline, which is kept, so a cut sequence cannot swallow the
// lines after it.
func skipString(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x07, r == 0x9c:
			return i + n
		case r == 0x1b:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			return i // a new sequence begins: Clean's loop takes it
		case r == '\n':
			return i
		}
		i += n
	}
	return len(s)
}

// CleanLogf wraps a log function (log.Printf) so each message is cleaned
// and each of its lines becomes a log line of its own, with the logger's
// prefix: for service logs (troupe webhook serve) that quote host output
// or request data.
func CleanLogf(logf func(format string, args ...any)) func(format string, args ...any) {
	return func(format string, args ...any) {
		lines := Lines(fmt.Sprintf(format, args...))
		if lines == nil {
			lines = []string{""}
		}
		for _, l := range lines {
			logf("%s", l)
		}
	}
}
