// Package testenv is what a test may not take for granted about the machine
// it runs on. A test that cannot run here skips, except in CI (CI=true):
// there a skipped lab, OpenSSH or end-to-end test would let `just test` pass
// with a whole tier unexercised, so the skip is a failure.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as CI runners set it).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with the reason, or fails it in CI.
func Skip(t testing.TB, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: this test cannot be skipped in CI: %s", fmt.Sprint(args...))
	}
	t.Skip(args...)
}
