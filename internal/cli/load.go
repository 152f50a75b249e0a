package cli

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/step"
)

// loader reads plans and roles from the content overlay, refusing content
// on disk another local user could have written and announcing the rest on
// stderr (stdout stays the report's: NDJSON under --format json).
func (g *Globals) loader() (*plan.Loader, fs.FS, error) {
	fsys, note, err := contentFS(g.Content, !g.noCwdContent)
	if err != nil {
		return nil, nil, err
	}
	if note != "" && note != g.contentNote { // once per run, not once per plan validated
		fmt.Fprintln(os.Stderr, "troupe: "+note)
		g.contentNote = note
	}
	l := &plan.Loader{FS: fsys, Actions: step.Registry{}, Funcs: render.Funcs(), SiteKeys: inventory.SiteKeys}
	if o, ok := fsys.(overlay); ok && o.disk != nil {
		l.FSName = "content" // files on disk over the embedded ones
	}
	return l, fsys, nil
}

// loadAll reads and checks the inventory and the plan together: every
// problem is reported before any connection is made.
func (g *Globals) loadAll(planName, invPath string) (*plan.Plan, *inventory.Inventory, fs.FS, error) {
	l, fsys, err := g.loader()
	if err != nil {
		return nil, nil, nil, err
	}
	p, perr := l.Load(planName)
	inv, ierr := inventory.Load(invPath)
	var msgs []string
	for _, err := range []error{ierr, perr} {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		if err := plan.CheckTargets(p, inv.CheckSelector); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return nil, nil, nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%s", strings.Join(msgs, "\n"))}
	}
	return p, inv, fsys, nil
}

// defaultInventory is $TROUPE_INVENTORY, else inventory/hosts.yaml.
func defaultInventory() string {
	if v := os.Getenv("TROUPE_INVENTORY"); v != "" {
		return v
	}
	return "inventory/hosts.yaml"
}
