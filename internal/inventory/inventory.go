// Package inventory reads the hosts troupe acts on: targets, nested groups,
// vars and SSH settings at every level, and selects hosts by expression.
//
// File format (version 1; Bolt's inventory v2 vocabulary):
//
//	version: 1
//	vars: {flavor: debian, lb_name: puppet.example.com}
//	config:
//	  ssh: {user: admin, private_key: ~/.ssh/id_ed25519, host_key_check: strict, sudo: true}
//	targets:                       # optional: hosts outside any group
//	  - {name: bastion.example.com}
//	groups:
//	  ca:
//	    targets: [ca01.example.com]          # a name, or a mapping:
//	  compilers:
//	    vars: {heap: 2g}
//	    targets:
//	      - name: compile01.example.com
//	        address: 10.0.0.11
//	        port: 22
//	        aliases: [compile01]
//	        vars: {heap: 3g}
//	        config: {ssh: {user: root}}
//	    groups:                              # nested groups
//	      canary: {targets: [compile01.example.com]}
//
// A var value written as {env: NAME} is read from the environment at load
// time and is a secret (masked wherever it is shown).
//
// Precedence, lowest to highest, for vars and for each SSH setting alike:
// built-in defaults < top-level < each group the host is in, parents before
// children and groups in file order < the target's own entry.
package inventory

import (
	"github.com/troupe/troupe/internal/transport"
)

// Inventory is a loaded, validated inventory file.
type Inventory struct {
	File   string
	Vars   map[string]any // top-level vars
	Hosts  []*Host        // in file order
	Groups []*Group       // every group, nested ones included, in file order
	// Secrets are the paths of top-level vars read from the environment
	// ("vars.db_password"); see also Host.Secrets and SecretValues.
	Secrets []string
}

// Host is one target with everything resolved for it.
type Host struct {
	Name    string
	Aliases []string
	Groups  []string       // every group the host belongs to (nested ones included)
	Vars    map[string]any // merged by the precedence above
	SSH     transport.Config
	Secrets []string // var paths that hold secrets, e.g. "vars.db_password"
}

// Group is one named group.
type Group struct {
	Name     string
	Parent   string   // "" for top-level groups
	Targets  []string // host names directly and through child groups, in file order
	Children []string
	Vars     map[string]any // the group's own vars (not merged)
	Secrets  []string       // paths of its own vars read from the environment
}

// Host returns the host with this name or alias.
func (inv *Inventory) Host(name string) *Host {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h
		}
		for _, a := range h.Aliases {
			if a == name {
				return h
			}
		}
	}
	return nil
}

// Group returns the group with this name, or nil.
func (inv *Inventory) Group(name string) *Group {
	for _, g := range inv.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}
