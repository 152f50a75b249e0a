// Package buildinfo says which troupe this is: the version and commit the
// release build stamped in with -ldflags -X, or else what the Go toolchain
// recorded (module version, vcs.revision, vcs.modified), so a plain
// `go build` or `go install` from a clone still names its commit.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set at build time:
//
//	-ldflags "-X github.com/troupe/troupe/internal/buildinfo.Version=v1.2.0
//	          -X github.com/troupe/troupe/internal/buildinfo.Commit=<sha>"
var (
	Version string
	Commit  string
)

// Info is what `troupe version` prints.
type Info struct {
	Version  string // "v1.2.0", "v0.0.0-20261207024201-bbc24c3abcde+dirty", or "dev"
	Commit   string // full commit hash, or "unknown"
	Modified bool   // built from a work tree with uncommitted changes
	Go       string // "go1.26.8"
	OS, Arch string
}

// Read combines the stamped values with the toolchain's build information.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuild(Version, Commit, bi)
}

func fromBuild(version, commit string, bi *debug.BuildInfo) Info {
	in := Info{Version: version, Commit: commit, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi != nil {
		in.Go = bi.GoVersion
		vcsCommit := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsCommit = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			case "GOOS":
				in.OS = s.Value
			case "GOARCH":
				in.Arch = s.Value
			}
		}
		if in.Commit == "" {
			in.Commit = vcsCommit
		}
		// "(devel)" is what Go records when it knows no version (no VCS
		// information, e.g. -buildvcs=false): not worth printing
		if v := bi.Main.Version; in.Version == "" && v != "" && v != "(devel)" {
			in.Version = v
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}
