// Command troupe runs YAML plans over SSH to build and operate a
// load-balanced Puppet site. This file only wires the commands into kong.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"

	"github.com/troupe/troupe/internal/cli"
	"github.com/troupe/troupe/internal/report"
)

func main() {
	var c cli.CLI
	ctx := kong.Parse(&c, append(cli.KongOptions(),
		kong.UsageOnError(),
		// kong exits 80 on a usage error; troupe's code for bad input is 2
		kong.Exit(func(code int) {
			if code == 80 {
				code = cli.ExitInvalid
			}
			os.Exit(code)
		}),
	)...)
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
