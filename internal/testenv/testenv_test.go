package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkip runs this package's helper test in a child process, once as on a
// developer's machine and once as in CI, and reads how it ended.
func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP: TestHelperSkips"},
		{"true", true, "--- FAIL: TestHelperSkips"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperSkips$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_HELPER=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("CI=%q: err %v, want failure %v and %q in:\n%s", tc.ci, err, tc.wantFail, tc.want, out)
		}
		if tc.wantFail && !strings.Contains(string(out), "cannot be skipped in CI: no widget") {
			t.Errorf("CI=%q: the failure does not give the reason:\n%s", tc.ci, out)
		}
	}
}

func TestHelperSkips(t *testing.T) {
	if os.Getenv("TESTENV_HELPER") == "" {
		return // not a test of its own: the child process TestSkip runs
	}
	Skip(t, "no widget")
}
