package secret

import "testing"

func TestRedactor(t *testing.T) {
	var r Redactor
	r.Add("hunter2", "", "ab", "hunter2-long", "  spaced-secret ")
	for in, want := range map[string]string{
		"pw=hunter2":             "pw=" + Mask,
		"pw=hunter2-long":        "pw=" + Mask, // the longer secret is masked whole
		"ab cab":                 "ab cab",     // too short to be a secret
		"x spaced-secret y":      "x " + Mask + " y",
		"nothing secret in here": "nothing secret in here",
	} {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	var nilR *Redactor
	if nilR.String("hunter2") != "hunter2" {
		t.Error("a nil redactor must pass text through")
	}
}
