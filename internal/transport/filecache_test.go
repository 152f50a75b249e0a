package transport

import (
	"os"
	"path/filepath"
	"testing"
)

// A file is parsed once while it is unchanged, and again once it was
// appended to or replaced, so a fan-out does not parse known_hosts per host
// and accept-new's additions are still seen.
func TestFileCacheParsesOncePerVersion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(p, []byte("one\n"), 0o600)
	var c fileCache[string]
	parses := 0
	load := func() string {
		t.Helper()
		v, err := c.load(p, p, func() (string, error) {
			parses++
			b, err := os.ReadFile(p)
			return string(b), err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for range 5 {
		if got := load(); got != "one\n" {
			t.Fatalf("got %q", got)
		}
	}
	if parses != 1 {
		t.Errorf("5 loads of an unchanged file parsed it %d times, want 1", parses)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("two\n")
	f.Close()
	if got := load(); got != "one\ntwo\n" {
		t.Errorf("after an append: %q", got)
	}
	// replaced by a file of the same size (ssh-keygen -R writes a new one)
	os.WriteFile(p+".new", []byte("uno\ndos\n"), 0o600)
	os.Rename(p+".new", p)
	if got := load(); got != "uno\ndos\n" {
		t.Errorf("after a replacement: %q", got)
	}
	if parses != 3 {
		t.Errorf("%d parses, want 3", parses)
	}
}
