package step

import (
	"fmt"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/render"
)

// PeerUser is an optional interface for actions that act on hosts besides
// their target: the load balancers of lb_server, the CA of
// puppet_cert. Peers names those hosts in the target's scope, before the
// run, so the runner connects, checks and locks them with the targets
// (and `plan validate -i` checks them) instead of reaching them behind its
// back. Run must ask Exec.Peer for no host Peers does not name, and must
// name them with the same code, so both agree.
type PeerUser interface {
	Peers(sc Scope) ([]string, error)
}

// Scope is what an action names its peers with: the target's template
// scope and the inventory's groups. Before the run .registered is not in
// it (no step has run yet): a template that reads it fails, and the runner
// reaches those peers only when the step runs.
type Scope struct {
	Data   map[string]any
	Groups map[string][]string
}

// Render renders a template string against the scope.
func (sc Scope) Render(s string) (string, error) { return render.String(s, sc.Data) }

// Scope is the scope the action runs in, for its Peers.
func (x *Exec) Scope() Scope { return Scope{Data: x.Data, Groups: x.Groups} }

// lbHosts are the HAProxy hosts: the hosts of inventory group lb (a
// template; default loadbalancer).
func lbHosts(sc Scope, lb string) ([]string, error) {
	group, err := sc.Render(dflt(lb, inventory.GroupLoadBalancer))
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	if len(sc.Groups[group]) == 0 {
		return nil, fmt.Errorf("inventory group %q has no hosts", group)
	}
	return sc.Groups[group], nil
}
