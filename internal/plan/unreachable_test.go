package plan

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/diag"
)

// ignore_unreachable is a boolean, refused with its position otherwise, on
// an action or a block alike.
func TestIgnoreUnreachableIsABoolean(t *testing.T) {
	_, err := loadFiles(map[string]string{"plans/p.yaml": `name: p
steps:
  - {id: fence, targets: a, ignore_unreachable: "yes", command: x}
  - id: blk
    targets: a
    ignore_unreachable: 1
    steps:
      - {id: inner, command: x}
`})
	list, ok := diag.As(err)
	if !ok {
		t.Fatalf("want positioned errors, got %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%s:%d:%d: %s", filepath.Base(e.File), e.Line, e.Col, e.Msg))
	}
	want := []string{
		`p.yaml:3:49: step "fence" ignore_unreachable must be true or false, got a string`,
		`p.yaml:6:25: step "blk" ignore_unreachable must be true or false, got an integer`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A block's ignore_unreachable is its steps', at any depth, through roles
// and their wrapped bodies, except where a step or a nested block sets its
// own; it is what the runner reads on each action step.
func TestIgnoreUnreachableInheritsIntoBlocks(t *testing.T) {
	p, err := loadFiles(map[string]string{
		"plans/p.yaml": `name: p
steps:
  - id: outer
    targets: a
    ignore_unreachable: true
    steps:
      - {id: plain, command: x}
      - {id: own, ignore_unreachable: false, command: x}
      - id: nested
        ignore_unreachable: false
        steps:
          - {id: deep, command: x}
          - {id: back, ignore_unreachable: true, command: x}
      - id: inc
        role: r
        steps:
          - {id: body, command: x}
  - {id: after, targets: a, command: x}
`,
		"roles/r.yaml": `name: r
steps:
  - {id: first, command: x}
  - body: the includer's steps
`})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"outer": true, "outer/plain": true, "outer/own": false, "outer/nested": false, "outer/nested/deep": false,
		"outer/nested/back": true, "outer/inc": true, "outer/inc/first": true, "outer/inc/body": true, "after": false,
	}
	_ = p.Walk(func(s *Step, _ int) error {
		if w, ok := want[s.ID]; !ok || s.IgnoreUnreachable != w {
			t.Errorf("%s: IgnoreUnreachable %v, want %v", s.ID, s.IgnoreUnreachable, w)
		}
		return nil
	})
	var tree bytes.Buffer
	p.Tree(&tree)
	for _, line := range strings.Split(tree.String(), "\n") {
		written := strings.HasPrefix(strings.TrimSpace(line), "outer ") || strings.Contains(line, "outer/nested/back")
		if strings.Contains(line, "ignore_unreachable") != written {
			t.Errorf("plan tree line %q: want ignore_unreachable shown exactly where it is written true", line)
		}
	}
}
