// Package diag holds the positioned errors of plan and inventory files:
// "file:line:col: message" followed by an excerpt of the offending line with
// a caret, so an operator sees the cause before anything connects.
package diag

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is one problem at one place in a source file.
type Error struct {
	File    string
	Line    int // 1-based; 0 when unknown
	Col     int // 1-based; 0 when unknown
	Msg     string
	Excerpt string // a few source lines with a caret under Col; may be empty
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Position())
	b.WriteString(": ")
	b.WriteString(clean(e.Msg))
	if e.Excerpt != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimRight(e.Excerpt, "\n"))
	}
	return b.String()
}

// Position is "file:line:col" (or less when unknown).
func (e *Error) Position() string {
	switch {
	case e.Line == 0:
		return e.File
	case e.Col == 0:
		return fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
}

// New builds an Error with an excerpt cut from src around line:col.
func New(file string, src []byte, line, col int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...), Excerpt: Excerpt(src, line, col)}
}

// ExcerptWidth is the most characters of a source line an excerpt shows:
// a 50 MB line is cut to a window around the column.
const ExcerptWidth = 120

// maxMsg caps a message, which may quote a value from the file.
const maxMsg = 1000

// Excerpt returns up to two lines before `line`, the line itself marked with
// ">", and a caret under col. Long lines are cut to ExcerptWidth characters
// around col (marked "…") and control characters are escaped, so an excerpt
// stays a few short lines whatever the file holds.
func Excerpt(src []byte, line, col int) string {
	if line <= 0 || len(src) == 0 {
		return ""
	}
	first := max(1, line-2)
	// Find the lines by scanning, not splitting: a big file is not copied.
	off := 0
	for n := 1; n < first; n++ {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			return ""
		}
		off += i + 1
	}
	var lines [][]byte
	for n := first; n <= line; n++ {
		if off > len(src) {
			return ""
		}
		end := bytes.IndexByte(src[off:], '\n')
		if end < 0 {
			end = len(src) - off
		}
		lines = append(lines, src[off:off+end])
		off += end + 1
	}
	// One window for all lines, so they stay aligned: from the start, or
	// centred on col when col is far right.
	skip := 0
	if col > ExcerptWidth-20 {
		skip = col - 1 - ExcerptWidth/2
	}
	var b strings.Builder
	width := len(strconv.Itoa(line))
	caret := 0
	for i, l := range lines {
		mark := " "
		if first+i == line {
			mark = ">"
		}
		text, before := window(l, skip, col-1)
		if first+i == line {
			caret = before
		}
		fmt.Fprintf(&b, "%s %*d | %s\n", mark, width, first+i, text)
	}
	if col > 0 {
		fmt.Fprintf(&b, "  %s   %s^\n", strings.Repeat(" ", width), strings.Repeat(" ", caret))
	}
	return b.String()
}

// window shows ExcerptWidth runes of line after skipping skip runes, control
// characters escaped, and returns how many characters it shows before rune
// index at (for the caret).
func window(line []byte, skip, at int) (string, int) {
	var b strings.Builder
	before := 0
	if skip > 0 {
		b.WriteString("…")
		before = 1
	}
	shown := 0
	for i, r := 0, 0; i < len(line); r++ {
		c, size := utf8.DecodeRune(line[i:])
		i += size
		if r < skip {
			continue
		}
		if shown == ExcerptWidth {
			b.WriteString("…")
			break
		}
		shown++
		s := string(c)
		if c == utf8.RuneError && size == 1 || unicode.IsControl(c) {
			q := strconv.QuoteRuneToASCII(c)
			if c == utf8.RuneError {
				q = fmt.Sprintf("'\\x%02x'", line[i-1])
			}
			s = q[1 : len(q)-1]
		}
		if r < at {
			before += utf8.RuneCountInString(s)
		}
		b.WriteString(s)
	}
	return b.String(), before
}

// clean cuts a message to maxMsg bytes and escapes its control characters
// other than newlines.
func clean(msg string) string {
	if len(msg) > maxMsg {
		cut := maxMsg
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	if !strings.ContainsFunc(msg, func(r rune) bool { return r != '\n' && unicode.IsControl(r) }) {
		return msg
	}
	var b strings.Builder
	for _, r := range msg {
		if r != '\n' && unicode.IsControl(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// List is several errors reported together (all problems of a file at once).
type List []*Error

func (l List) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Err returns nil for an empty list, so callers can `return list.Err()`.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// As reports whether err holds positioned errors and returns them.
func As(err error) (List, bool) {
	var l List
	if errors.As(err, &l) {
		return l, true
	}
	var e *Error
	if errors.As(err, &e) {
		return List{e}, true
	}
	return nil, false
}
