// Command troupe-release builds troupe's release artefacts into dist/: a
// static binary and a .deb (binary, man page, shell completions) per Linux
// architecture, and SHA256SUMS. `just release` runs it from the repository.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/troupe/troupe/internal/release"
)

func main() {
	out := flag.String("out", "dist", "directory for the artefacts (earlier ones in it are replaced)")
	version := flag.String("version", "", "version to stamp (default: git describe --tags --always --dirty)")
	arches := flag.String("arch", "amd64,arm64", "Linux architectures (GOARCH), comma-separated")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "troupe-release: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := release.Build(ctx, release.Options{Out: *out, Version: *version, Arches: strings.Split(*arches, ","), Log: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "troupe-release: "+err.Error())
		os.Exit(1)
	}
	fmt.Printf("troupe %s (deb %s, commit %s) in %s\n", r.Version, r.DebVersion, r.Commit, *out)
}
