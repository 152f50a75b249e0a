package render

import (
	"testing"

	"github.com/troupe/troupe/internal/corpus"
)

// FuzzRender: any template text renders or fails, within MaxOutput, against
// a scope shaped like a run's. Seeds: the shipped templates, the hostile
// plans (as text) and templates that ask for too much.
func FuzzRender(f *testing.F) {
	for _, b := range corpus.Files("../../roles/templates/*.tmpl", "testdata/*.tmpl", "../../fixtures/hostile/plans/*.yaml") {
		f.Add(string(b))
	}
	f.Add(`{{ range 100000000 }}{{ indent 1000 "x" }}{{ end }}`)
	f.Add(`{{ indent 9999999999 "x" }}`)
	f.Add(`{{ toYAML .vars }}{{ toJSON .vars }}{{ join "," (keys .vars) }}{{ get .vars "a" 1 }}`)
	data := map[string]any{
		"params": map[string]any{"version": "7.1", "n": 3, "on": true},
		"vars":   map[string]any{"a": []any{"x", 1, map[string]any{"k": "v"}}, "s": "str"},
		"host":   map[string]any{"name": "web1"},
	}
	f.Fuzz(func(t *testing.T, text string) {
		out, err := String(text, data)
		if err == nil && len(out) > MaxOutput {
			t.Fatalf("rendered %d bytes", len(out))
		}
		File("f", text, data)
		Bool(text, data)
	})
}
