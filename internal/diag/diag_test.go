package diag

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	src := []byte("a: 1\nb: 2\nsteps:\n  - id: x\n    seriall: 2\n")
	e := New("plans/x.yaml", src, 5, 5, "unknown field %q", "seriall")
	want := `plans/x.yaml:5:5: unknown field "seriall"
  3 | steps:
  4 |   - id: x
> 5 |     seriall: 2
          ^`
	if e.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", e.Error(), want)
	}
	l, ok := As(fmt.Errorf("wrapped: %w", List{e, e}))
	if !ok || len(l) != 2 {
		t.Errorf("As: %v %v", l, ok)
	}
	if (List{}).Err() != nil || errors.Is(List{e}.Err(), nil) {
		t.Error("Err of an empty list must be nil")
	}
	if Excerpt(src, 99, 1) != "" || (&Error{File: "f"}).Position() != "f" {
		t.Error("out-of-range positions must degrade gracefully")
	}
}

func TestExcerptCutsLongLinesAndEscapes(t *testing.T) {
	long := "k: " + strings.Repeat("x", 5000) + "BAD" + strings.Repeat("y", 5000)
	src := []byte("a: 1\nb: \x01\tz\n" + long + "\n")
	e := New("f.yaml", src, 3, 5004, "here")
	got := e.Error()
	want := "f.yaml:3:5004: here\n" +
		"  1 | …\n" + // the window starts past these short lines
		"  2 | …\n" +
		"> 3 | …" + strings.Repeat("x", 60) + "BAD" + strings.Repeat("y", 57) + "…\n" +
		"      " + strings.Repeat(" ", 61) + "^"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	e = New("f.yaml", src, 2, 5, "ctl") // col 5 is the tab
	if !strings.Contains(e.Error(), `> 2 | b: \x01\tz`) || !strings.HasSuffix(e.Error(), "\n"+strings.Repeat(" ", 13)+"^") {
		t.Errorf("control characters must be escaped, the caret placed after them:\n%s", e.Error())
	}
	e = &Error{File: "f", Msg: strings.Repeat("m", 5000) + "\x1b[31m"}
	if len(e.Error()) > maxMsg+10 {
		t.Errorf("a message must be cut: %d bytes", len(e.Error()))
	}
}
