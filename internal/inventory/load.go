package inventory

import (
	"fmt"
	"os"
	"os/user"
	"regexp"
	"sort"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/yamldoc"
)

// Built-in defaults (the lowest precedence level).
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultHostKeyCheck   = "strict"
)

// currentUser is the default SSH user; a variable so tests can pin it.
var currentUser = func() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// Load reads and checks an inventory file.
func Load(path string) (*Inventory, error) {
	src, err := yamldoc.ReadFile(nil, path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return LoadBytes(path, src)
}

var (
	topKeys    = []string{"version", "vars", "config", "targets", "groups"}
	groupKeys  = []string{"targets", "vars", "config", "groups"}
	targetKeys = []string{"name", "address", "port", "aliases", "vars", "config"}
	configKeys = []string{"ssh"}
	sshKeys    = []string{"user", "port", "private_key", "passphrase_env", "agent", "jump",
		"connect_timeout", "sudo", "sudo_password_env", "host_key_check", "known_hosts"}
	hostKeyChecks = []string{"strict", "accept-new", "off"}

	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// setting is one value written at one level, with where it was written.
type setting struct {
	v any
	n ast.Node
}

// varVal is one var written at one level; secrets holds the sub-paths
// (relative to the var, "" for the whole value) read from the environment.
type varVal struct {
	v       any
	secrets []string
}

// layer is what one level (top, group, target entry) sets.
type layer struct {
	vars map[string]varVal
	ssh  map[string]setting
}

type groupDef struct {
	g      *Group
	parent *groupDef
	keyN   ast.Node
	layer
}

// entry is one appearance of a target in the file.
type entry struct {
	name    string
	node    ast.Node
	isMap   bool
	group   *groupDef // nil for top-level targets
	address string
	addrN   ast.Node
	aliases []string
	aliasN  []ast.Node
	layer
}

type hostDef struct {
	h       *Host
	entries []*entry
	member  map[*groupDef]bool
	address string
	addrN   ast.Node
}

type loader struct {
	d       *yamldoc.Doc
	inv     *Inventory
	top     layer
	groups  []*groupDef
	byName  map[string]*groupDef
	entries []*entry
}

// LoadBytes decodes and checks an inventory; name is used in error positions.
func LoadBytes(name string, src []byte) (*Inventory, error) {
	d, body, err := yamldoc.Parse(name, src)
	if err != nil {
		return nil, err
	}
	l := &loader{d: d, inv: &Inventory{File: name, Vars: map[string]any{}}, byName: map[string]*groupDef{}}
	if body == nil {
		return nil, diag.List{&diag.Error{File: name, Msg: "empty inventory: expected a mapping starting with \"version: 1\""}}
	}
	ps, ok := d.Mapping(body, "the inventory")
	if !ok {
		return nil, d.Errs
	}
	d.CheckKeys(ps, "the inventory", topKeys...)
	sawVersion := false
	for _, p := range ps {
		switch p.Key {
		case "version":
			sawVersion = true
			if v, ok := d.Integer(p.Val, "version"); ok && v != 1 {
				d.Errorf(p.Val, "unsupported inventory version %d (this troupe reads version 1)", v)
			}
		case "vars":
			l.top.vars = l.vars(p.Val, "vars")
		case "config":
			l.top.ssh = l.config(p.Val)
		case "targets":
			l.targets(p.Val, nil)
		case "groups":
			l.groupMap(p.Val, nil)
		}
	}
	if !sawVersion {
		d.Errorf(body, "missing \"version: 1\" at the top of the inventory")
	}
	l.resolve()
	sort.SliceStable(d.Errs, func(i, j int) bool {
		a, b := d.Errs[i], d.Errs[j]
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	if err := d.Errs.Err(); err != nil {
		return nil, err
	}
	return l.inv, nil
}
