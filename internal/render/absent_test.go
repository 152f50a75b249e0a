package render

import (
	"errors"
	"strings"
	"testing"
)

// A template that fails reading a top-level key its data leaves out says
// which key, as a type; a template broken otherwise does not, even when it
// reads a key that is there.
func TestAbsentKeyIsTyped(t *testing.T) {
	data := map[string]any{"params": map[string]any{"who": "lb1"}}
	for _, c := range []struct {
		text, key string
	}{
		{`{{ trim .registered.who.stdout }}`, "registered"},
		{`{{ .params.who }},{{ $.registered.x }}`, "registered"},
		{`{{ with .params }}{{ .who }}{{ $.vars.lb }}{{ end }}`, "vars"},
		{`{{ if .params.who }}{{ .vars.lb }}{{ end }}`, "vars"},
		{`{{ .params.nosuch }}`, ""},                    // .params is there: a missing entry in it is the plan's error
		{`{{ required "no lb" .params.lb }}`, ""},       // a failing function
		{`{{ range .params }}{{ .name }}{{ end }}`, ""}, // .name is read from an element, not the root
	} {
		_, err := String(c.text, data)
		if err == nil {
			t.Errorf("%s: no error", c.text)
			continue
		}
		var absent *AbsentError
		switch got := errors.As(err, &absent); {
		case c.key == "" && got:
			t.Errorf("%s: an AbsentError for .%s: %v", c.text, absent.Key, err)
		case c.key != "" && (!got || absent.Key != c.key):
			t.Errorf("%s: want an AbsentError for .%s, got %T %v", c.text, c.key, err, err)
		case got && !strings.HasPrefix(err.Error(), "template: "):
			t.Errorf("%s: the message changed: %v", c.text, err)
		}
	}
	if _, err := String(`{{ .host }}`, nil); errors.As(err, new(*AbsentError)) {
		t.Errorf("data that is not a map: %v", err)
	}
}
