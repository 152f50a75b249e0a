package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/troupe/troupe/internal/secret"
)

func TestClean(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain text stays", "server compile1 set to drain\tok\nnext", "server compile1 set to drain\tok\nnext"},
		{"non-ASCII text stays", "café ✓ 日本", "café ✓ 日本"},
		{"colour", "\x1b[31mred\x1b[0m", "red"},
		{"clear and reset", "a\x1b[2J\x1bcb", "ab"},
		{"conceal", "\x1b[8mhidden\x1b[28m", "hidden"},
		{"charset", "\x1b(Bx", "x"},
		{"OSC title with BEL", "\x1b]0;pwned\x07text", "text"},
		{"OSC hyperlink with ST", "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"cut OSC ends at the newline", "\x1b]0;never ended\nnext line", "\nnext line"},
		{"cut OSC at the end", "text\x1b]0;cut", "text"},
		{"cut CSI at the end", "text\x1b[3", "text"},
		{"OSC broken by a CSI", "\x1b]0;x\x1b[31mred", "red"},
		{"lone ESC", "a\x1b", "a"},
		{"carriage return", "ok\rcompile2 | faked", "okcompile2 | faked"},
		{"CRLF", "line\r\n", "line\n"},
		{"backspace, BEL, NUL, DEL", "a\bb\x07c\x00d\x7fe", "abcde"},
		{"8-bit CSI", "a\u009b2Jb", "ab"},
		{"8-bit OSC", "a\u009d0;t\u009cb", "ab"},
		{"other C1", "a\u0085b\u008db", "abb"},
		{"bidi override", "user\u202eexe.txt", "userexe.txt"},
		{"bidi embeddings and isolates", "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069x", "x"},
		{"bidi marks", "\u200ea\u200fb\u061cc", "abc"},
		{"invalid UTF-8", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"an 8-bit CSI byte alone is invalid UTF-8", "a\x9b2Jb", "a\uFFFD2Jb"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Clean(c.in)
			if got != c.want {
				t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
			}
			if Clean(got) != got {
				t.Errorf("Clean is not idempotent on %q", got)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Clean(%q) = %q: invalid UTF-8", c.in, got)
			}
		})
	}
}

func TestLines(t *testing.T) {
	got := Lines("one\r\n\x1b[1mtwo\x1b[0m\n\nfour\n")
	want := []string{"one", "two", "", "four"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Lines = %q, want %q", got, want)
	}
	if Lines("\n\x1b[0m\n") != nil {
		t.Errorf("Lines of nothing printable = %q", Lines("\n\x1b[0m\n"))
	}
}

// hostile is text a host might send to take over the operator's terminal.
const hostile = "\x1b[2J\x1bc\x1b[8mhidden\x1b]0;title\x07 \x1b]8;;http://x\x07cut" +
	"\rcompile9.lab.test | faked\b\x07\u009b2J\u202etxt.exe\u2066\u200f\xff\nsecond line\x1b]0;unterminated"

// forbidden are the runes none of the reporters may pass from a host.
func forbidden(s string) []rune {
	var bad []rune
	for _, r := range s {
		if r != '\n' && r != '\t' && (r < 0x20 || dropped(r)) {
			bad = append(bad, r)
		}
	}
	return bad
}

// TestHostileTextEveryReporter sends the hostile text in every free-text
// field and checks each output path: plain human, JSON and the debug log
// carry none of it (the coloured human output has its own escapes, so it
// is checked for the host's), and every human line of a host's output
// starts with that host's prefix.
func TestHostileTextEveryReporter(t *testing.T) {
	var human, colour, js bytes.Buffer
	path := filepath.Join(t.TempDir(), "x.log")
	red := &secret.Redactor{}
	l, err := NewLog(path, red)
	if err != nil {
		t.Fatal(err)
	}
	r := Multi(NewHuman(&human, red, HumanOptions{Verbose: true}),
		NewHuman(&colour, red, HumanOptions{Verbose: true, Color: "always"}),
		NewJSON(&js, red), l)
	host := "compile1.lab.test"
	for _, e := range []Event{
		{Kind: RunStart, Plan: "p", Hosts: []string{host}},
		{Kind: StepStart, Step: "s", Hosts: []string{host}},
		{Kind: HostLine, Step: "s", Host: host, Stream: "stdout", Text: hostile},
		{Kind: Debug, Host: host, Text: hostile},
		{Kind: WouldWrite, Step: "s", Host: host, Text: hostile, Diff: hostile},
		{Kind: Warning, Host: host, Text: hostile},
		{Kind: HostResult, Step: "s", Host: host, Status: Skipped, Reason: hostile},
		{Kind: HostResult, Step: "s", Host: host, Status: Failed, Error: hostile, Stderr: hostile},
		{Kind: RunEnd, Status: Failed, Error: hostile},
	} {
		r.Emit(e)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	logged, _ := os.ReadFile(path)
	for name, out := range map[string]string{"human": human.String(), "json": js.String(), "log": string(logged)} {
		if !strings.Contains(out, "second line") {
			t.Errorf("%s: the host's text did not arrive:\n%s", name, out)
		}
		if bad := forbidden(out); len(bad) > 0 {
			t.Errorf("%s passes %q:\n%q", name, bad, out)
		}
	}
	for _, seq := range []string{"\x1b[2J", "\x1bc", "\x1b[8m", "\x1b]", "\r", "\b", "\x07", "\u009b", "\u202e", "\u2066", "\u200f"} {
		if strings.Contains(colour.String(), seq) {
			t.Errorf("coloured output passes the host's %q", seq)
		}
	}
	// the live output: one prefixed line per line of the host's text, and
	// no line starting with the other host's name the CR tried to fake
	var prefixed int
	for _, l := range strings.Split(human.String(), "\n") {
		if strings.HasPrefix(l, "compile9") {
			t.Errorf("a faked line: %q", l)
		}
		if strings.HasPrefix(l, host+" | ") {
			prefixed++
		}
	}
	if prefixed != 2 {
		t.Errorf("%d prefixed live lines, want 2 (the text's two lines):\n%s", prefixed, human.String())
	}
}

func TestCleanLogf(t *testing.T) {
	var got []string
	logf := CleanLogf(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })
	logf("deploy of %s failed: %s", "production", "\x1b[2Jboom\r\nsecond\x1b]0;t\x07")
	want := []string{"deploy of production failed: boom", "second"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logged %q, want %q", got, want)
	}
}
