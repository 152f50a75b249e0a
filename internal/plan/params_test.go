package plan

import (
	"strings"
	"testing"
)

// certname and serial params take one value, checked when bound: a
// certname is never a selector, a list or an option, a serial never a
// pattern. Each refusal has an accepted value beside it.
func TestTypedStringParams(t *testing.T) {
	p := &Plan{Name: "revoke", Params: []Param{
		{Name: "certname", Type: "certname", Required: true},
		{Name: "serial", Type: "serial", Default: ""},
	}}
	for _, tt := range []struct {
		certname, serial string
		bad              string // "" when accepted
	}{
		{"web01.example.com", "", ""},
		{"agent_1-b", "0x1F", ""},
		{"a", "1f:a0", ""},
		{"a", "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567", ""},
		{"agents;reissue=true", "", "is not a certname"},
		{"web01,web02", "", "is not a certname"},
		{"web*", "", "is not a certname"},
		{"Web01", "", "is not a certname"},
		{"a/b", "", "is not a certname"},
		{"-h", "", "starts with '-'"},
		{"", "", "empty certname"},
		{strings.Repeat("a", 254), "", "at most 253"},
		{"a", ".*", "is not a certificate serial"},
		{"a", "1f|2", "is not a certificate serial"},
		{"a", " 1f", "is not a certificate serial"},
		{"a", "0", "is zero"},
		{"a", "0x" + strings.Repeat("f", 41), "at most 40"},
	} {
		given := map[string]string{"certname": tt.certname}
		if tt.serial != "" {
			given["serial"] = tt.serial
		}
		v, err := p.BindParams(given)
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("%q %q refused: %v", tt.certname, tt.serial, err)
		case tt.bad == "" && (v["certname"] != tt.certname || v["serial"] != tt.serial):
			t.Errorf("%q %q bound as %v", tt.certname, tt.serial, v)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("%q %q: want %q, got %v", tt.certname, tt.serial, tt.bad, err)
		}
	}
}
