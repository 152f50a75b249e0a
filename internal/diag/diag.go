// Package diag holds the positioned errors of plan and inventory files:
// "file:line:col: message" followed by an excerpt of the offending line with
// a caret, so an operator sees the cause before anything connects.
package diag

import (
	"errors"
	"fmt"
	"strings"
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
	b.WriteString(e.Msg)
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

// Excerpt returns up to two lines before `line`, the line itself marked with
// ">", and a caret under col.
func Excerpt(src []byte, line, col int) string {
	if line <= 0 || len(src) == 0 {
		return ""
	}
	lines := strings.Split(string(src), "\n")
	if line > len(lines) {
		return ""
	}
	var b strings.Builder
	width := len(fmt.Sprint(line))
	for n := max(1, line-2); n <= line; n++ {
		mark := " "
		if n == line {
			mark = ">"
		}
		fmt.Fprintf(&b, "%s %*d | %s\n", mark, width, n, lines[n-1])
	}
	if col > 0 {
		fmt.Fprintf(&b, "  %s   %s^\n", strings.Repeat(" ", width), strings.Repeat(" ", col-1))
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
