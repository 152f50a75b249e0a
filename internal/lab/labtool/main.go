// Command labtool drives internal/lab directly, for developing the lab and
// reproducing the figures in docs/lab.md without the troupe CLI:
//
//	go build -o /tmp/labtool ./internal/lab/labtool
//	/tmp/labtool up [-suite trixie] [-compilers 2] [-agents 1]
//	/tmp/labtool status | down | ssh HOST [CMD...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/lab"
)

func main() {
	lab.MaybeServe()
	var s lab.Spec
	fs := flag.NewFlagSet("labtool", flag.ExitOnError)
	fs.StringVar(&s.Suite, "suite", "", "bookworm | trixie")
	fs.IntVar(&s.Compilers, "compilers", 0, "")
	fs.IntVar(&s.Agents, "agents", 0, "")
	fs.StringVar(&s.CacheDir, "cache", "", "")
	fs.StringVar(&s.WorkDir, "work", "", "")
	fs.StringVar(&s.Subnet, "subnet", "", "")
	fs.StringVar(&s.Bridge, "bridge", "", "")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labtool cache|up|down|status|ssh [flags]")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs.Parse(os.Args[2:])
	s = s.Defaults()
	ctx := context.Background()
	t0 := time.Now()
	switch verb {
	case "up":
		l, err := lab.Up(ctx, s, os.Stderr)
		check(err)
		fmt.Printf("up in %.1fs; inventory %s\n", time.Since(t0).Seconds(), l.Inventory)
	case "cache":
		check(lab.BuildCache(ctx, s, os.Stderr))
		fmt.Printf("cache in %.1fs\n", time.Since(t0).Seconds())
	case "down":
		check(lab.Down(ctx, s.WorkDir, os.Stderr))
		fmt.Printf("down in %.1fs\n", time.Since(t0).Seconds())
	case "status":
		l, err := lab.Load(s.WorkDir)
		check(err)
		st, err := l.Status()
		check(err)
		fmt.Printf("%-20s %-12s %-6s %-6s %8s %8s  %s\n", "HOST", "ADDRESS", "PID1", "PROCS", "RSS_MiB", "PSS_MiB", "SERVICES")
		for _, h := range st {
			fmt.Printf("%-20s %-12s %-6d %-6d %8.1f %8.1f  %s\n", h.Name, h.Address, h.InitPID, h.Procs, h.RSSMiB, h.PSSMiB, strings.Join(h.Services, ", "))
		}
	case "ssh":
		l, err := lab.Load(s.WorkDir)
		check(err)
		args := fs.Args()
		if len(args) < 1 {
			check(fmt.Errorf("usage: labtool ssh HOST [CMD...]"))
		}
		cmd := l.SSHCommand(args[0], args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if cmd.ProcessState != nil {
				os.Exit(cmd.ProcessState.ExitCode())
			}
			check(err)
		}
	default:
		check(fmt.Errorf("unknown verb %q", verb))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtool:", err)
		os.Exit(1)
	}
}
