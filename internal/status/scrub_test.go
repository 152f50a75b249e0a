package status

import (
	"encoding/json"
	"strings"
	"testing"
)

// evil is what a hostile host might put in any answer: clear and reset,
// conceal, a cut OSC, a CR faking another row, a bidi override, an 8-bit
// CSI and invalid UTF-8.
const evil = "\x1b[2J\x1bc\x1b[8mX\x1b]0;t\x07\rfake\u202e\u009b2J\x1b]8;;cut"

// Every string of a reading, in the table and in the JSON, is cleaned:
// the control repository's line (its URL comes from r10k.yaml on the
// host; branch names are made safe by r10k's naming already), a service's
// state, a probe's error.
func TestHostTextCleanedTableAndJSON(t *testing.T) {
	heads := "\n" + marker + " heads\nremote https://git.example.com/control" + evil + "\n" +
		prodCommit + "\trefs/heads/prod" + evil + "\n" + marker + " end 0\n"
	c := fromText(t, heads+"\n"+marker+" svc\n"+evil+"\n"+marker+" end 3\n", "c1.example.com", true, RoleCompiler)
	c.Error = "probe: " + evil + "\nsecond line"
	site := Judge([]*Host{c}, now, DefaultHorizon)
	js, err := json.MarshalIndent(site, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var decoded any
	if err := json.Unmarshal(js, &decoded); err != nil {
		t.Fatal(err)
	}
	tab := plainTable(site)
	strs := strings.Join(allStrings(decoded), "\n")
	for _, want := range []string{"https://git.example.com/controlXfake (from", "puppetserver is Xfake", "probe: Xfake second line"} {
		if !strings.Contains(tab, want) {
			t.Errorf("the table lacks %q:\n%s", want, tab)
		}
		if want = strings.TrimSuffix(want, " (from"); !strings.Contains(strs, want) {
			t.Errorf("the JSON lacks %q:\n%s", want, strs)
		}
	}
	for name, out := range map[string]string{"table": tab, "json's decoded strings": strs} {
		for _, r := range out {
			if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || r == 0x202e {
				t.Errorf("%s passes %U:\n%q", name, r, out)
				break
			}
		}
		if strings.Contains(out, "\nsecond line") {
			t.Errorf("%s: a host's newline starts a line of its own:\n%s", name, out)
		}
	}
}

// allStrings is every string (keys too) of a decoded JSON value.
func allStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, allStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(append(out, k), allStrings(e)...)
		}
		return out
	}
	return nil
}
