package runner

import (
	"fmt"
	"maps"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
)

// scopeLayer is what enclosing blocks add to the template scope: the params
// of the plan (or sub-plan) in force and the vars of included roles, outer
// first. Role values may be templates, rendered per host.
type scopeLayer struct {
	params   map[string]any
	defaults []map[string]any // role defaults: below inventory vars
	vars     []map[string]any // include vars: above inventory vars
	delegate string           // delegate_to of the enclosing blocks
}

func (l scopeLayer) with(params map[string]any, defaults, vars map[string]any) scopeLayer {
	n := scopeLayer{params: l.params, defaults: l.defaults, vars: l.vars, delegate: l.delegate}
	if params != nil {
		n.params = params
	}
	if len(defaults) > 0 {
		n.defaults = append(append([]map[string]any{}, l.defaults...), defaults)
	}
	if len(vars) > 0 {
		n.vars = append(append([]map[string]any{}, l.vars...), vars)
	}
	return n
}

// enter is the layer inside block s: a sub-plan's params (rendered with
// l's params, as targets are: see plan.TargetsData), role defaults and
// vars on top of l, and its delegate_to for the steps in it.
func (r *run) enter(l scopeLayer, s *plan.Step) (scopeLayer, error) {
	params, err := s.SubParams(func(text string) (string, error) {
		return render.String(text, plan.TargetsData(l.params))
	})
	if err != nil {
		return l, fmt.Errorf("step %s: %w", s.ID, err)
	}
	n := l.with(params, s.Defaults, s.Vars)
	if s.DelegateTo != "" {
		n.delegate = s.DelegateTo
	}
	return n, nil
}

// data builds one host's template scope:
//
//	.params .vars .host .groups .site .registered .flavor
//
// vars precedence, lowest first: role defaults < inventory (already merged
// by the inventory's own precedence) < include vars.
func (r *run) data(h *inventory.Host, l scopeLayer) (map[string]any, error) {
	return r.scope(h, l, nil)
}

// scope is data without the keys in unknown, values not known yet (before
// the run: .registered): a template that reads one fails, role vars too.
func (r *run) scope(h *inventory.Host, l scopeLayer, unknown []string) (map[string]any, error) {
	r.mu.Lock()
	reg := registeredData(r.registered[h.Name])
	r.mu.Unlock()
	flavor, err := r.flavor(h)
	if err != nil {
		return nil, err
	}
	groups, _ := r.groupData()
	d := map[string]any{
		"params":     l.params,
		"host":       hostData(h),
		"groups":     groups,
		"registered": reg,
		"flavor":     flavor.Data(),
		"site":       r.o.Inventory.SiteFor(h).Data(),
	}
	for _, k := range unknown {
		delete(d, k)
	}
	vars := map[string]any{}
	d["vars"] = vars
	apply := func(m map[string]any) error {
		for k, v := range m {
			rv, err := renderValue(v, d)
			if err != nil {
				return fmt.Errorf("var %s: %w", k, err)
			}
			vars[k] = rv
		}
		return nil
	}
	for _, m := range l.defaults {
		if err := apply(m); err != nil {
			return nil, err
		}
	}
	maps.Copy(vars, h.Vars)
	for _, m := range l.vars {
		if err := apply(m); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// registeredData is .registered: each result as registered, with its
// data's keys beside the result's own (.registered.pkgs.upgrade for
// .registered.pkgs.data.upgrade), a result's own key winning a clash.
func registeredData(reg map[string]any) map[string]any {
	out := make(map[string]any, len(reg))
	for name, v := range reg {
		res, ok := v.(map[string]any)
		data, hasData := res["data"].(map[string]any)
		if !ok || !hasData {
			out[name] = v
			continue
		}
		flat := maps.Clone(data)
		maps.Copy(flat, res)
		out[name] = flat
	}
	return out
}

// renderValue renders templates inside strings, lists and maps.
func renderValue(v any, d map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return x, nil
		}
		return render.String(x, d)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := renderValue(e, d)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := renderValue(e, d)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

func hostData(h *inventory.Host) map[string]any {
	short, _, _ := strings.Cut(h.Name, ".")
	groups := make([]any, len(h.Groups))
	for i, g := range h.Groups {
		groups[i] = g
	}
	aliases := make([]any, len(h.Aliases))
	for i, a := range h.Aliases {
		aliases[i] = a
	}
	return map[string]any{
		"name":    h.Name,
		"short":   short,
		"address": h.SSH.Address,
		"groups":  groups,
		"aliases": aliases,
		"vars":    h.Vars,
	}
}

// groupData is .groups: every group's hosts, for templates such as
// haproxy.cfg that list a tier; and the same as names, for actions.
func (r *run) groupData() (map[string]any, map[string][]string) {
	r.groupsOnce.Do(func() {
		r.groups, r.groupNames = map[string]any{}, map[string][]string{}
		for _, g := range r.o.Inventory.Groups {
			list := []any{}
			var names []string
			for _, name := range g.Targets {
				if h := r.o.Inventory.Host(name); h != nil {
					list = append(list, hostData(h))
					names = append(names, h.Name)
				}
			}
			r.groups[g.Name], r.groupNames[g.Name] = list, names
		}
	})
	return r.groups, r.groupNames
}

// flavor is the host's typed flavor: nil without one.
func (r *run) flavor(h *inventory.Host) (*puppet.Flavor, error) {
	if r.o.Flavor == nil {
		return nil, nil
	}
	f, err := r.o.Flavor(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	return f, nil
}
