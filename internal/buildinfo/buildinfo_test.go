package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuild(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8",
		Main: debug.Module{Path: "github.com/troupe/troupe", Version: "v0.0.0-20261207024201-bbc24c3abcde+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "bbc24c3abcdef0123456789abcdef0123456789a"}, {Key: "vcs.modified", Value: "true"},
		}}
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/troupe/troupe", Version: "(devel)"}}
	for _, tc := range []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped wins over the toolchain's", "v1.2.0", "1111111111111111111111111111111111111111", vcs,
			Info{Version: "v1.2.0", Commit: "1111111111111111111111111111111111111111", Modified: true, Go: "go1.26.8", OS: "linux", Arch: "arm64"}},
		{"go build from a clone: the toolchain's", "", "", vcs,
			Info{Version: "v0.0.0-20261207024201-bbc24c3abcde+dirty", Commit: "bbc24c3abcdef0123456789abcdef0123456789a", Modified: true, Go: "go1.26.8", OS: "linux", Arch: "arm64"}},
		{"nothing known: says so", "", "", noVCS,
			Info{Version: "dev", Commit: "unknown", Go: "go1.26.8", OS: runtime.GOOS, Arch: runtime.GOARCH}},
		{"no build info at all", "", "", nil,
			Info{Version: "dev", Commit: "unknown", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuild(tc.version, tc.commit, tc.bi); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestGoInstallFromClone: a git work tree of this source, `go install
// ./cmd/troupe`, and `troupe version` names its commit; after an edit it says
// "(modified)". The work tree is made from the files as they are now (not a
// clone of HEAD), so the code under test is the code being changed.
func TestGoInstallFromClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds troupe twice")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git work tree: ", err)
	}
	clone := copyTree(t, strings.TrimSpace(string(top)))
	head := strings.TrimSpace(run(t, clone, nil, "git", "rev-parse", "HEAD"))
	gobin := t.TempDir()
	// as on a machine with Go's defaults (this one may set -buildvcs=false)
	env := []string{"GOBIN=" + gobin, "GOFLAGS=-buildvcs=auto"}

	run(t, clone, env, "go", "install", "./cmd/troupe")
	out := run(t, "", nil, filepath.Join(gobin, "troupe"), "version")
	want := "commit: " + head + "\n"
	if !strings.Contains(out, want) || !strings.Contains(out, runtime.Version()) || strings.Contains(out, "modified") {
		t.Fatalf("troupe version after go install from a clean clone:\n%s\nwant a line %q, Go %s, not modified", out, want, runtime.Version())
	}
	if v := strings.TrimSpace(run(t, "", nil, filepath.Join(gobin, "troupe"), "version", "--short")); !strings.HasSuffix(v, head[:12]) {
		t.Errorf("version --short = %q, want the pseudo-version of %s", v, head[:12])
	}

	if err := os.WriteFile(filepath.Join(clone, "cmd", "troupe", "extra.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, clone, env, "go", "install", "./cmd/troupe")
	if out := run(t, "", nil, filepath.Join(gobin, "troupe"), "version"); !strings.Contains(out, "commit: "+head+" (modified)\n") {
		t.Fatalf("after an edit:\n%s\nwant the commit marked (modified)", out)
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyTree copies the files git knows (tracked and not ignored) of top into
// a new repository with one commit.
func copyTree(t *testing.T, top string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "troupe")
	for _, f := range strings.Split(strings.TrimSpace(run(t, top, nil, "git", "ls-files", "-co", "--exclude-standard")), "\n") {
		b, err := os.ReadFile(filepath.Join(top, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org"}
	run(t, dst, nil, "git", "init", "-q")
	run(t, dst, nil, "git", "add", "-A")
	run(t, dst, id, "git", "commit", "-q", "-m", "snapshot")
	return dst
}
