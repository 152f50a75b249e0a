package diag

import (
	"errors"
	"fmt"
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
