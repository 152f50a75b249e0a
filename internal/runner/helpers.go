package runner

import (
	"errors"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/step"
)

func title(s *plan.Step) string {
	if s.Name != "" {
		return s.Name
	}
	if isBlock(s) {
		if s.Source != "" {
			return s.Source
		}
		return "block"
	}
	return step.Title(s.Kind, s.Action)
}

// isBlock: a `steps` block, or an expanded role or sub-plan.
func isBlock(s *plan.Step) bool {
	switch s.Kind {
	case "", "steps", "role", "plan":
		return true
	}
	return false
}

func names(hs []*inventory.Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}

func isExit(err error) bool {
	var ee *step.ExitError
	return errors.As(err, &ee)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
