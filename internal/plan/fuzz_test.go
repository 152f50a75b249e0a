package plan_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/troupe/troupe/internal/corpus"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/step"
)

// FuzzLoadPlan: whatever the plan (and the role it may include) holds,
// loading ends with a plan of bounded size or an error of short lines.
// Seeds: the hostile corpus and the test plans.
func FuzzLoadPlan(f *testing.F) {
	for _, b := range corpus.Files("../../fixtures/hostile/plans/*.yaml", "../../fixtures/hostile/roles/*.yaml", "../../fixtures/plans/*/*.yaml") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		fsys := fstest.MapFS{"plans/f.yaml": {Data: src}, "roles/f.yaml": {Data: src}}
		l := &plan.Loader{FS: fsys, Actions: step.Registry{}, Funcs: render.Funcs()}
		p, err := l.Load("f")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if utf8.RuneCountInString(line) > 1200 {
					t.Fatalf("error line of %d characters", utf8.RuneCountInString(line))
				}
			}
			return
		}
		n := 0
		p.Walk(func(*plan.Step, int) error { n++; return nil })
		if n > 2*10_000 { // steps plus the blocks holding them
			t.Fatalf("a plan of %d steps loaded", n)
		}
	})
}
