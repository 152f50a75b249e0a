package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/runner"
)

// PlanCmd groups the plan subcommands.
type PlanCmd struct {
	List     PlanListCmd     `cmd:"" help:"List the plans (shipped and on disk)."`
	Show     PlanShowCmd     `cmd:"" help:"Show a plan's params and steps as a tree."`
	Validate PlanValidateCmd `cmd:"" help:"Check plans (and their roles) without connecting anywhere."`
}

type PlanListCmd struct{}

func (PlanListCmd) Run(g *Globals) error {
	l, _, err := g.loader()
	if err != nil {
		return err
	}
	list, err := l.List()
	if err != nil {
		return err
	}
	width := 0
	for _, s := range list {
		width = max(width, len(s.Name))
	}
	for _, s := range list {
		fmt.Printf("%-*s  %s\n", width, s.Name, s.Description)
	}
	return nil
}

type PlanShowCmd struct {
	Plan string `arg:"" help:"Plan name or path."`
}

func (c PlanShowCmd) Run(g *Globals) error {
	l, _, err := g.loader()
	if err != nil {
		return err
	}
	p, err := l.Load(c.Plan)
	if err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	p.Tree(os.Stdout)
	return nil
}

type PlanValidateCmd struct {
	Plans     []string `arg:"" help:"Plan names or paths."`
	Inventory string   `short:"i" help:"Also check every step's targets, and the hosts steps act on besides them (peers), against this inventory." placeholder:"FILE"`
}

func (c PlanValidateCmd) Run(g *Globals) error {
	var failed []string
	for _, name := range c.Plans {
		var peers *runner.Peers
		var err error
		if c.Inventory != "" {
			peers, err = g.validateWith(name, c.Inventory)
		} else {
			var l *plan.Loader
			if l, _, err = g.loader(); err != nil {
				return err
			}
			_, err = l.Load(name)
		}
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		fmt.Printf("%s: ok\n", name)
		if peers != nil {
			printPeers(peers)
		}
	}
	if len(failed) > 0 {
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%s", strings.Join(failed, "\n"))}
	}
	return nil
}

// validateWith checks a plan against an inventory: its targets, then its
// peers, named as a run would name them. No --param is given here: params
// with a default count; when a param is required, a peer named from .params
// is known only at run time.
func (g *Globals) validateWith(name, invPath string) (*runner.Peers, error) {
	p, inv, _, err := g.loadAll(name, invPath)
	if err != nil {
		return nil, err
	}
	params, err := p.BindParams(nil)
	if err != nil {
		params = nil
	}
	peers, err := runner.FindPeers(runner.Options{Plan: p, Inventory: inv, Params: params, Flavor: hostFlavor})
	if err != nil {
		return nil, fmt.Errorf("%s: peers (hosts steps act on besides their targets):\n  %s", name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return peers, nil
}

// printPeers lists the hosts a run will connect to and lock besides the
// targets, each with the first step that needs it.
func printPeers(p *runner.Peers) {
	for _, h := range p.Hosts {
		fmt.Printf("  peer %s\n", h)
	}
	for _, l := range p.Later {
		fmt.Printf("  peers known only at run time: %s\n", l)
	}
}
