package cli

import (
	"os"

	"github.com/troupe/troupe/internal/inventory"
)

// InventoryCmd groups the inventory subcommands.
type InventoryCmd struct {
	Show InventoryShowCmd `cmd:"" help:"Print the resolved hosts, groups and vars (secrets masked)."`
}

type InventoryShowCmd struct {
	Inventory string `short:"i" help:"Inventory file ($TROUPE_INVENTORY, default inventory/hosts.yaml)." placeholder:"FILE"`
	Limit     string `short:"l" help:"Only hosts matching this selector." placeholder:"SELECTOR"`
}

func (c InventoryShowCmd) Run() error {
	if c.Inventory == "" {
		c.Inventory = defaultInventory()
	}
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return &ExitError{Code: ExitInvalid, Err: err}
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
