package inventory

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Select returns the hosts matched by expr, in inventory order, without
// duplicates. expr is a comma-separated list of terms; a term is `all`, a
// group name (its hosts, nested groups included), a host name or alias, or a
// glob over host names and aliases (path.Match syntax: `compile*`). A term
// prefixed with `!` excludes its hosts; an expression made only of
// exclusions starts from all hosts.
//
// An unknown name is an error that lists the known groups. A glob may match
// nothing; an expression of explicit names that selects no host is an error.
func (inv *Inventory) Select(expr string) ([]*Host, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty target selector")
	}
	include := map[*Host]bool{}
	exclude := map[*Host]bool{}
	var errs []error
	hasInclude, hasGlob := false, false
	for _, raw := range strings.Split(expr, ",") {
		term := strings.TrimSpace(raw)
		neg := strings.HasPrefix(term, "!")
		if neg {
			term = strings.TrimSpace(term[1:])
		}
		if term == "" {
			errs = append(errs, fmt.Errorf("selector %q has an empty term", expr))
			continue
		}
		hosts, glob, err := inv.term(term)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set := include
		if neg {
			set = exclude
		} else {
			hasInclude = true
			hasGlob = hasGlob || glob
		}
		for _, h := range hosts {
			set[h] = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []*Host
	for _, h := range inv.Hosts {
		if (include[h] || !hasInclude) && !exclude[h] {
			out = append(out, h)
		}
	}
	if len(out) == 0 && !hasGlob {
		return nil, fmt.Errorf("selector %q selects no hosts", expr)
	}
	return out, nil
}

// CheckSelector reports whether expr is a valid selector for this inventory.
func (inv *Inventory) CheckSelector(expr string) error {
	_, err := inv.Select(expr)
	return err
}

// term resolves one term (without `!`); glob reports whether it was a glob.
func (inv *Inventory) term(t string) (hosts []*Host, glob bool, err error) {
	if t == "all" {
		return inv.Hosts, false, nil
	}
	if g := inv.Group(t); g != nil {
		for _, name := range g.Targets {
			if h := inv.Host(name); h != nil {
				hosts = append(hosts, h)
			}
		}
		if len(hosts) == 0 && slices.Contains(OptionalGroups, t) {
			return nil, true, nil
		}
		if len(hosts) == 0 {
			return nil, false, fmt.Errorf("group %q has no hosts", t)
		}
		return hosts, false, nil
	}
	if h := inv.Host(t); h != nil {
		return []*Host{h}, false, nil
	}
	if strings.ContainsAny(t, "*?[") {
		if _, err := path.Match(t, ""); err != nil {
			return nil, true, fmt.Errorf("invalid glob %q: %v", t, err)
		}
		for _, h := range inv.Hosts {
			for _, name := range append([]string{h.Name}, h.Aliases...) {
				if ok, _ := path.Match(t, name); ok {
					hosts = append(hosts, h)
					break
				}
			}
		}
		return hosts, true, nil
	}
	if slices.Contains(OptionalGroups, t) {
		return nil, true, nil // like a glob, it may select no host
	}
	return nil, false, fmt.Errorf("unknown host or group %q (groups: %s)", t, inv.groupNames())
}

func (inv *Inventory) groupNames() string {
	if len(inv.Groups) == 0 {
		return "none; use all"
	}
	names := []string{"all"}
	for _, g := range inv.Groups {
		names = append(names, g.Name)
	}
	return strings.Join(names, ", ")
}
