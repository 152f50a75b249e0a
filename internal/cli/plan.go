package cli

import (
	"fmt"
	"os"
	"strings"
)

// PlanCmd groups the plan subcommands.
type PlanCmd struct {
	List     PlanListCmd     `cmd:"" help:"List the plans (shipped and on disk)."`
	Show     PlanShowCmd     `cmd:"" help:"Show a plan's params and steps as a tree."`
	Validate PlanValidateCmd `cmd:"" help:"Check plans (and their roles) without connecting anywhere."`
}

type PlanListCmd struct{}

func (PlanListCmd) Run(g *Globals) error {
	l, _ := g.loader()
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
	l, _ := g.loader()
	p, err := l.Load(c.Plan)
	if err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	p.Tree(os.Stdout)
	return nil
}

type PlanValidateCmd struct {
	Plans     []string `arg:"" help:"Plan names or paths."`
	Inventory string   `short:"i" help:"Also check every step's targets against this inventory." placeholder:"FILE"`
}

func (c PlanValidateCmd) Run(g *Globals) error {
	var failed []string
	for _, name := range c.Plans {
		var err error
		if c.Inventory != "" {
			_, _, _, err = g.loadAll(name, c.Inventory)
		} else {
			l, _ := g.loader()
			_, err = l.Load(name)
		}
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		fmt.Printf("%s: ok\n", name)
	}
	if len(failed) > 0 {
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%s", strings.Join(failed, "\n"))}
	}
	return nil
}
