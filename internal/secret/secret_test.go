package secret

import (
	"reflect"
	"testing"
)

func TestRedactor(t *testing.T) {
	var r Redactor
	r.Add("hunter2", "", "ab", "abc", "hunter2-long", "  spaced-secret ", "-----BEGIN KEY-----\nline-one-AAAA\n}\nline-two-BBBB\n-----END KEY-----")
	for in, want := range map[string]string{
		"pw=hunter2":             "pw=" + Mask,
		"pw=hunter2-long":        "pw=" + Mask, // the longer secret is masked whole
		"ab cab abc":             "ab cab abc", // too short to be a secret
		"x spaced-secret y":      "x " + Mask + " y",
		"nothing secret in here": "nothing secret in here",
		// a multi-line secret is masked whole and line by line, as output
		// arrives a line at a time
		"-----BEGIN KEY-----\nline-one-AAAA\n}\nline-two-BBBB\n-----END KEY-----": Mask,
		"got: line-two-BBBB": "got: " + Mask,
		"}":                  "}", // a line too short to mask alone
	} {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if r.TooShort() != 2 {
		t.Errorf("TooShort = %d, want 2 (ab, abc)", r.TooShort())
	}
	if !r.Contains("echo hunter2") || r.Contains("echo hunter") {
		t.Error("Contains")
	}
	v := r.Value(map[string]any{"stdout": "a hunter2 b", "list": []any{"line-one-AAAA", 3}, "hunter2": true})
	want := map[string]any{"stdout": "a " + Mask + " b", "list": []any{Mask, 3}, Mask: true}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("Value = %v, want %v", v, want)
	}
	var nilR *Redactor
	if nilR.String("hunter2") != "hunter2" {
		t.Error("a nil redactor must pass text through")
	}
}
