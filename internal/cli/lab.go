package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/troupe/troupe/internal/lab"
)

// LabCmd groups the lab subcommands: a real site on this machine, built
// from network namespaces, one cached Debian rootfs and real sshd per host.
type LabCmd struct {
	Up     LabUpCmd     `cmd:"" help:"Build (first time) and start the lab hosts; writes an inventory for troupe."`
	Cache  LabCacheCmd  `cmd:"" help:"Build the rootfs and package cache of a suite without starting a lab."`
	Down   LabDownCmd   `cmd:"" help:"Stop every lab host and remove everything it left (cache kept)."`
	Status LabStatusCmd `cmd:"" help:"Each host, its address, what runs on it and its memory."`
	SSH    LabSSHCmd    `cmd:"" name:"ssh" help:"Open a root shell (or run CMD) on a lab host."`

	ServeFiles LabServeFilesCmd `cmd:"" name:"serve-files" hidden:"" help:"The lab's HTTP file server (started by lab up)."`
}

type labFlags struct {
	WorkDir string `help:"Where the running lab lives." default:"/var/lib/troupe-lab" env:"TROUPE_LAB_DIR" placeholder:"DIR"`
}

type cacheFlags struct {
	Suite    string `help:"Debian suite: bookworm (Puppet 7) or trixie (Puppet 8)." enum:"bookworm,trixie" default:"bookworm"`
	CacheDir string `help:"Rootfs and package cache (kept between labs)." default:"/var/cache/troupe-lab" env:"TROUPE_LAB_CACHE" placeholder:"DIR"`
}

type LabCacheCmd struct{ cacheFlags }

func (c LabCacheCmd) Run() error {
	if err := lab.CheckHost(); err != nil {
		return err
	}
	return lab.BuildCache(context.Background(), lab.Spec{Suite: c.Suite, CacheDir: c.CacheDir}, os.Stderr)
}

type LabUpCmd struct {
	labFlags
	cacheFlags
	Compilers int    `help:"Number of compilers." default:"2"`
	Agents    int    `help:"Number of agents." default:"1"`
	LBs       int    `name:"load-balancers" help:"Number of load balancers: 1, or 2 sharing a virtual IP (keepalived)." default:"1"`
	CAStandby bool   `name:"ca-standby" help:"Add ca2, a standby CA (group ca_standby) the CA pushes its directory to."`
	PuppetDBs int    `name:"puppetdbs" help:"Number of PuppetDBs sharing one database: 1 or 2." default:"1"`
	Postgres  bool   `help:"Put PuppetDB's PostgreSQL on a host of its own (db, group postgres)."`
	Subnet    string `help:"First three octets of the lab's /24." default:"10.77.0"`
	Bridge    string `help:"Bridge name (another one runs a second lab beside the first)." default:"labbr0"`
}

func (c LabUpCmd) Run() error {
	if err := lab.CheckHost(); err != nil {
		return err
	}
	l, err := lab.Up(context.Background(), lab.Spec{Suite: c.Suite, Compilers: c.Compilers, Agents: c.Agents, LoadBalancers: c.LBs, CAStandby: c.CAStandby,
		PuppetDBs: c.PuppetDBs, Postgres: c.Postgres, CacheDir: c.CacheDir, WorkDir: c.WorkDir, Subnet: c.Subnet, Bridge: c.Bridge}, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("lab up: %d hosts (%s)\ninventory: %s\ntry: troupe run ping -i %s\n", len(l.Hosts), l.Spec.Suite, l.Inventory, l.Inventory)
	return nil
}

type LabDownCmd struct{ labFlags }

func (c LabDownCmd) Run() error {
	if err := lab.CheckHost(); err != nil {
		return err
	}
	return lab.Down(context.Background(), c.WorkDir, os.Stderr)
}

type LabStatusCmd struct{ labFlags }

func (c LabStatusCmd) Run() error {
	l, err := lab.Load(c.WorkDir)
	if err != nil {
		return err
	}
	st, err := l.Status()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tADDRESS\tGROUPS\tUP\tSYSTEMD\tFAILED UNITS\tRSS MiB\tPSS MiB\tRUNNING")
	for _, h := range st {
		failed := strings.Join(h.Failed, ",")
		if failed == "" {
			failed = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%s\t%.0f\t%.0f\t%s\n", h.Name, h.Address, strings.Join(h.Groups, ","), h.Running,
			h.System, failed, h.RSSMiB, h.PSSMiB, strings.Join(h.Services, " "))
	}
	return w.Flush()
}

// LabServeFilesCmd is the lab's detached HTTP file server: `lab up`
// re-executes troupe with lab.ServeArgs. Hidden: nobody types it.
type LabServeFilesCmd struct {
	Dir  string `arg:"" help:"Directory to serve."`
	Addr string `arg:"" help:"Address to listen on (host:port)."`
}

func (c LabServeFilesCmd) Run() error { return lab.Serve(c.Dir, c.Addr) }

type LabSSHCmd struct {
	labFlags
	Host string   `arg:"" help:"Host (short or full name)."`
	Cmd  []string `arg:"" optional:"" passthrough:"" help:"Command to run instead of a shell."`
}

func (c LabSSHCmd) Run() error {
	l, err := lab.Load(c.WorkDir)
	if err != nil {
		return err
	}
	if _, ok := l.Host(c.Host); !ok {
		return fmt.Errorf("no lab host %q", c.Host)
	}
	cmd := l.SSHCommand(c.Host, c.Cmd...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// the remote command's own output says why; pass its exit code on quietly
		return &ExitError{Code: ee.ExitCode(), Err: errors.New("")}
	}
	return err
}
