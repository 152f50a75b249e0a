package plan

import (
	"slices"
	"testing"
)

// TestControlFormsCoverTheControls: a control added to the decoder without
// a form would be missing from the generated schema.
func TestControlFormsCoverTheControls(t *testing.T) {
	v := Vocabulary()
	for _, k := range v.ControlKeys {
		if v.ControlForms[k] == "" {
			t.Errorf("control %q has no form", k)
		}
	}
	for k := range v.ControlForms {
		if !slices.Contains(v.ControlKeys, k) {
			t.Errorf("form for %q, which is not a control", k)
		}
	}
}
