package cli

import (
	"os"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/topology"
)

// InventoryCmd groups the inventory subcommands.
type InventoryCmd struct {
	Show  InventoryShowCmd  `cmd:"" help:"Print the resolved hosts, groups and vars (secrets masked)."`
	Graph InventoryGraphCmd `cmd:"" help:"Draw the site: agents → load balancer → compilers → CA and PuppetDB."`
}

type InventoryGraphCmd struct {
	Inventory string `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Format    string `enum:"mermaid,dot" default:"mermaid" help:"mermaid (Markdown, GitHub) or dot (Graphviz)."`
}

func (c InventoryGraphCmd) Run() error {
	inv, err := loadInventory(c.Inventory)
	if err != nil {
		return err
	}
	return topology.Build(inv).Write(os.Stdout, c.Format)
}

type InventoryShowCmd struct {
	Inventory string `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Limit     string `short:"l" help:"Only hosts matching this selector." placeholder:"SELECTOR"`
}

// loadInventory reads path (default: defaultInventory); a bad file is bad
// input.
func loadInventory(path string) (*inventory.Inventory, error) {
	if path == "" {
		path = defaultInventory()
	}
	inv, err := inventory.Load(path)
	if err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: err}
	}
	return inv, nil
}

func (c InventoryShowCmd) Run() error {
	inv, err := loadInventory(c.Inventory)
	if err != nil {
		return err
	}
	if c.Limit != "" {
		hs, err := inv.Select(c.Limit)
		if err != nil {
			return &ExitError{Code: ExitInvalid, Err: err}
		}
		keep := map[string]bool{}
		for _, h := range hs {
			keep[h.Name] = true
		}
		var kept []*inventory.Host
		for _, h := range inv.Hosts {
			if keep[h.Name] {
				kept = append(kept, h)
			}
		}
		inv.Hosts = kept
	}
	inv.Show(os.Stdout)
	return nil
}
