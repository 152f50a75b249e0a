// Command troupe runs YAML plans over SSH to build and operate a
// load-balanced Puppet site. This file only wires the commands into kong.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"

	"github.com/troupe/troupe/internal/cli"
	"github.com/troupe/troupe/internal/lab"
	"github.com/troupe/troupe/internal/report"
)

func main() {
	// The lab's package and git server is this same binary, re-executed in
	// the background by `troupe lab up`; it never returns from here.
	lab.MaybeServe()

	var c cli.CLI
	ctx := kong.Parse(&c,
		kong.Name("troupe"),
		kong.Description("Run YAML plans over SSH to build and operate a load-balanced Puppet site."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		// kong exits 80 on a usage error; troupe's code for bad input is 2
		kong.Exit(func(code int) {
			if code == 80 {
				code = cli.ExitInvalid
			}
			os.Exit(code)
		}),
	)
	err := ctx.Run(&c.Globals)
	if err == nil {
		return
	}
	// cleaned: a failed run's error quotes what the hosts said
	if msg := report.Clean(err.Error()); msg != "" {
		fmt.Fprintln(os.Stderr, "troupe: "+msg)
	}
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.Code)
	}
	os.Exit(1)
}
