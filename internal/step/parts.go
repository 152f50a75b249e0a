package step

import (
	"fmt"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/puppet"
)

// Parts names packages by the part of the site they are (server, agent,
// termini, db), each with the version to reach (a template; "" pins none):
// the host's flavor says which package that part is, so a plan names "the
// server" once for every flavor. A plan's package sets (`packages:` in the
// plan, `set:` in the action) become parts when the plan is loaded.
type Parts map[string]string

func (ps Parts) validate() error {
	for part := range ps {
		if !slices.Contains(puppet.PartNames, part) {
			return fmt.Errorf("parts: unknown part %q (parts: %s)", part, strings.Join(puppet.PartNames, ", "))
		}
	}
	return nil
}

// part is one part resolved on one host.
type part struct {
	name    string // the part: server, agent, ...
	pkg     string // the flavor's package
	version string // rendered; "" pins none
}

// resolve is each part's package on this host and its rendered version, in
// PartNames order.
func (ps Parts) resolve(x *Exec) ([]part, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	if x.Flavor == nil {
		return nil, fmt.Errorf("parts need the host's flavor (vars.flavor) to name its packages")
	}
	var out []part
	for _, name := range puppet.PartNames {
		v, ok := ps[name]
		if !ok {
			continue
		}
		pkg, ok := x.Flavor.Packages.Part(name)
		if !ok {
			return nil, fmt.Errorf("parts: flavor %s has no %s package", x.Flavor.Name, name)
		}
		version, err := x.Render(v)
		if err != nil {
			return nil, err
		}
		out = append(out, part{name: name, pkg: pkg, version: strings.TrimSpace(version)})
	}
	return out, nil
}

// partList is the parts' names for a title.
func (ps Parts) partList() string {
	var out []string
	for _, name := range puppet.PartNames {
		if _, ok := ps[name]; ok {
			out = append(out, "the "+name)
		}
	}
	return strings.Join(out, ", ")
}

// pinned reports whether any part names a version (before rendering: a
// template counts).
func (ps Parts) pinned() bool {
	for _, v := range ps {
		if v != "" {
			return true
		}
	}
	return false
}
