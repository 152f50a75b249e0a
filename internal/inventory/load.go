package inventory

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/diag"
	"github.com/troupe/troupe/internal/transport"
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

// vars decodes a vars mapping; {env: NAME} values are read from the environment.
func (l *loader) vars(n ast.Node, what string) map[string]varVal {
	ps, ok := l.d.Mapping(n, what)
	if !ok {
		return nil
	}
	out := make(map[string]varVal, len(ps))
	for _, p := range ps {
		var secrets []string
		v := l.varValue(p.Val, p.Key, "", &secrets)
		out[p.Key] = varVal{v: v, secrets: secrets}
	}
	return out
}

func (l *loader) varValue(n ast.Node, name, sub string, secrets *[]string) any {
	n = l.d.Resolve(n)
	switch v := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		ps, _ := l.d.Mapping(v, "value")
		if len(ps) == 1 && ps[0].Key == "env" {
			env, ok := l.d.Str(ps[0].Val, "env")
			if !ok {
				return nil
			}
			if !envNameRE.MatchString(env) {
				l.d.Errorf(ps[0].Val, "var %q: %q is not an environment variable name", name, env)
				return nil
			}
			val, set := os.LookupEnv(env)
			if !set {
				l.d.Errorf(ps[0].Val, "var %q: environment variable %s is not set", name, env)
				return nil
			}
			*secrets = append(*secrets, sub)
			return val
		}
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			m[p.Key] = l.varValue(p.Val, name, joinPath(sub, p.Key), secrets)
		}
		return m
	case *ast.SequenceNode:
		out := make([]any, 0, len(v.Values))
		for i, x := range v.Values {
			out = append(out, l.varValue(x, name, joinPath(sub, strconv.Itoa(i)), secrets))
		}
		return out
	}
	return l.d.Value(n)
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "." + b
}

// config decodes `config: {ssh: {...}}`.
func (l *loader) config(n ast.Node) map[string]setting {
	ps, ok := l.d.Mapping(n, "config")
	if !ok {
		return nil
	}
	l.d.CheckKeys(ps, "config", configKeys...)
	out := map[string]setting{}
	for _, p := range ps {
		if p.Key != "ssh" {
			continue
		}
		sps, ok := l.d.Mapping(p.Val, "config.ssh")
		if !ok {
			continue
		}
		l.d.CheckKeys(sps, "config.ssh", sshKeys...)
		for _, s := range sps {
			if v, ok := l.sshValue(s.Key, s.Val); ok {
				out[s.Key] = setting{v: v, n: s.Val}
			}
		}
	}
	return out
}

func (l *loader) sshValue(key string, n ast.Node) (any, bool) {
	d := l.d
	what := "ssh." + key
	switch key {
	case "user", "private_key", "known_hosts", "jump":
		s, ok := d.Str(n, what)
		if ok && s == "" {
			d.Errorf(n, "%s must not be empty", what)
			return nil, false
		}
		return s, ok
	case "passphrase_env", "sudo_password_env":
		s, ok := d.Str(n, what)
		if ok && !envNameRE.MatchString(s) {
			d.Errorf(n, "%s: %q is not an environment variable name", what, s)
			return nil, false
		}
		return s, ok
	case "port":
		return l.port(n, what)
	case "agent", "sudo":
		return d.Boolean(n, what)
	case "connect_timeout":
		return d.Duration(n, what)
	case "host_key_check":
		s, ok := d.Str(n, what)
		if !ok {
			return nil, false
		}
		for _, c := range hostKeyChecks {
			if s == c {
				return s, true
			}
		}
		d.Errorf(n, "%s must be one of %s, got %q", what, strings.Join(hostKeyChecks, ", "), s)
		return nil, false
	}
	return nil, false
}

func (l *loader) port(n ast.Node, what string) (int, bool) {
	v, ok := l.d.Integer(n, what)
	if ok && (v < 1 || v > 65535) {
		l.d.Errorf(n, "%s must be between 1 and 65535, got %d", what, v)
		return 0, false
	}
	return v, ok
}

// groupMap decodes `groups:` (name → group) under parent.
func (l *loader) groupMap(n ast.Node, parent *groupDef) {
	ps, ok := l.d.Mapping(n, "groups")
	if !ok {
		return
	}
	for _, p := range ps {
		l.group(p, parent)
	}
}

func (l *loader) group(p yamldoc.Pair, parent *groupDef) {
	d := l.d
	name := p.Key
	switch {
	case name == "all":
		d.Errorf(p.KeyN, "group name \"all\" is reserved (it selects every host)")
		return
	case !groupNameRE.MatchString(name):
		d.Errorf(p.KeyN, "invalid group name %q (use letters, digits, '_' and '-')", name)
		return
	}
	if prev, dup := l.byName[name]; dup {
		line, col := yamldoc.Pos(prev.keyN)
		d.Errorf(p.KeyN, "group %q is already defined at %d:%d", name, line, col)
		return
	}
	gd := &groupDef{g: &Group{Name: name, Vars: map[string]any{}}, parent: parent, keyN: p.KeyN}
	if parent != nil {
		gd.g.Parent = parent.g.Name
		parent.g.Children = append(parent.g.Children, name)
	}
	l.byName[name] = gd
	l.groups = append(l.groups, gd)
	l.inv.Groups = append(l.inv.Groups, gd.g)

	what := fmt.Sprintf("group %q", name)
	ps, ok := d.Mapping(p.Val, what)
	if !ok {
		return
	}
	d.CheckKeys(ps, what, groupKeys...)
	for _, q := range ps {
		switch q.Key {
		case "vars":
			gd.vars = l.vars(q.Val, what+" vars")
		case "config":
			gd.ssh = l.config(q.Val)
		case "targets":
			l.targets(q.Val, gd)
		case "groups":
			l.groupMap(q.Val, gd)
		}
	}
}

// targets decodes a list of targets (names or mappings) in group g.
func (l *loader) targets(n ast.Node, g *groupDef) {
	d := l.d
	n = d.Resolve(n)
	if yamldoc.IsNull(n) {
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.Errorf(n, "targets must be a list, got %s", yamldoc.Kind(n))
		return
	}
	for _, item := range seq.Values {
		item = d.Resolve(item)
		switch v := item.(type) {
		case *ast.StringNode:
			if l.checkHostName(v.Value, item, "target") {
				l.entries = append(l.entries, &entry{name: v.Value, node: item, group: g})
			}
		case *ast.MappingNode, *ast.MappingValueNode:
			l.targetMap(item, g)
		default:
			d.Errorf(item, "a target must be a host name or a mapping with \"name\", got %s", yamldoc.Kind(item))
		}
	}
}

func (l *loader) targetMap(n ast.Node, g *groupDef) {
	d := l.d
	ps, _ := d.Mapping(n, "target")
	e := &entry{node: n, isMap: true, group: g}
	for _, p := range ps {
		if p.Key == "name" {
			if s, ok := d.Str(p.Val, "target name"); ok && l.checkHostName(s, p.Val, "target") {
				e.name = s
			}
		}
	}
	what := "target"
	if e.name != "" {
		what = fmt.Sprintf("target %q", e.name)
	}
	d.CheckKeys(ps, what, targetKeys...)
	var portN ast.Node
	port := 0
	for _, p := range ps {
		switch p.Key {
		case "address":
			if s, ok := d.Str(p.Val, "address"); ok {
				if s == "" {
					d.Errorf(p.Val, "address must not be empty")
				} else {
					e.address, e.addrN = s, p.Val
				}
			}
		case "port":
			if v, ok := l.port(p.Val, "port"); ok {
				port, portN = v, p.Val
			}
		case "aliases":
			al, _ := d.StrList(p.Val, "aliases")
			for _, a := range al {
				if l.checkHostName(a, p.Val, "alias") {
					e.aliases = append(e.aliases, a)
					e.aliasN = append(e.aliasN, p.Val)
				}
			}
		case "vars":
			e.vars = l.vars(p.Val, what+" vars")
		case "config":
			e.ssh = l.config(p.Val)
		}
	}
	if portN != nil {
		if e.ssh == nil {
			e.ssh = map[string]setting{}
		}
		e.ssh["port"] = setting{v: port, n: portN}
	}
	if e.name == "" {
		if len(ps) > 0 && !hasKey(ps, "name") {
			d.Errorf(n, "target has no \"name\"")
		}
		return
	}
	l.entries = append(l.entries, e)
}

func hasKey(ps []yamldoc.Pair, k string) bool {
	for _, p := range ps {
		if p.Key == k {
			return true
		}
	}
	return false
}

func (l *loader) checkHostName(s string, n ast.Node, what string) bool {
	switch {
	case s == "":
		l.d.Errorf(n, "%s name must not be empty", what)
	case s == "all":
		l.d.Errorf(n, "%s name \"all\" is reserved (it selects every host)", what)
	case strings.ContainsAny(s, " \t,!*?[]{}"):
		l.d.Errorf(n, "invalid %s name %q (no spaces, commas, '!' or glob characters)", what, s)
	default:
		return true
	}
	return false
}

// resolve turns the collected entries into hosts with merged vars and SSH
// settings: names and aliases, one host per name, the precedence layers,
// then jump hosts.
func (l *loader) resolve() {
	defined, aliasOf := l.aliases()
	hosts, order := l.mergeEntries(defined, aliasOf)
	l.checkGroupNames(hosts, aliasOf)
	l.inv.Vars, l.inv.Secrets = flatten(l.top.vars)
	for _, gd := range l.groups {
		gd.g.Vars, gd.g.Secrets = flatten(gd.vars)
	}
	settings := map[*Host]map[string]setting{}
	for _, hd := range order {
		settings[hd.h] = l.layers(hd)
		l.inv.Hosts = append(l.inv.Hosts, hd.h)
	}
	l.jumps(settings)
}

// aliases returns the names defined by mapping entries, and each alias's
// host, refusing an alias that is another host's name or alias.
func (l *loader) aliases() (defined map[string]bool, aliasOf map[string]string) {
	defined = map[string]bool{}
	for _, e := range l.entries {
		if e.isMap {
			defined[e.name] = true
		}
	}
	aliasOf = map[string]string{}
	for _, e := range l.entries {
		for i, a := range e.aliases {
			switch prev, dup := aliasOf[a]; {
			case a == e.name:
			case defined[a]:
				l.d.Errorf(e.aliasN[i], "alias %q of host %q is the name of another host", a, e.name)
			case dup && prev != e.name:
				l.d.Errorf(e.aliasN[i], "alias %q of host %q is already an alias of host %q", a, e.name, prev)
			default:
				aliasOf[a] = e.name
			}
		}
	}
	return defined, aliasOf
}

// mergeEntries gathers every appearance of a host (a bare name may be an
// alias) into one hostDef, in file order: its address, aliases and groups.
func (l *loader) mergeEntries(defined map[string]bool, aliasOf map[string]string) (map[string]*hostDef, []*hostDef) {
	hosts := map[string]*hostDef{}
	var order []*hostDef
	for _, e := range l.entries {
		name := e.name
		if !e.isMap && !defined[name] {
			if canon, ok := aliasOf[name]; ok {
				name = canon
			}
		}
		hd := hosts[name]
		if hd == nil {
			hd = &hostDef{h: &Host{Name: name}, member: map[*groupDef]bool{}}
			hosts[name] = hd
			order = append(order, hd)
		}
		hd.entries = append(hd.entries, e)
		if e.address != "" {
			if hd.address != "" && hd.address != e.address {
				line, col := yamldoc.Pos(hd.addrN)
				l.d.Errorf(e.addrN, "host %q: address %q conflicts with address %q set at %d:%d", name, e.address, hd.address, line, col)
			} else if hd.address == "" {
				hd.address, hd.addrN = e.address, e.addrN
			}
		}
		for _, a := range e.aliases {
			if a != name && !contains(hd.h.Aliases, a) {
				hd.h.Aliases = append(hd.h.Aliases, a)
			}
		}
		for g := e.group; g != nil; g = g.parent {
			hd.member[g] = true
			if !contains(g.g.Targets, name) {
				g.g.Targets = append(g.g.Targets, name)
			}
		}
	}
	return hosts, order
}

// checkGroupNames refuses group names that are host names or aliases.
func (l *loader) checkGroupNames(hosts map[string]*hostDef, aliasOf map[string]string) {
	for _, gd := range l.groups {
		if hd, ok := hosts[gd.g.Name]; ok {
			l.d.Errorf(gd.keyN, "group %q has the same name as host %q", gd.g.Name, hd.h.Name)
		} else if canon, ok := aliasOf[gd.g.Name]; ok {
			l.d.Errorf(gd.keyN, "group %q has the same name as an alias of host %q", gd.g.Name, canon)
		}
	}
}

// layers merges a host's vars and SSH settings by precedence (top level,
// its groups in file order, its own entries) into hd.h, and returns the
// SSH settings with their nodes, for the jump hosts.
func (l *loader) layers(hd *hostDef) map[string]setting {
	h := hd.h
	vars := map[string]varVal{}
	ssh := map[string]setting{}
	apply := func(ly layer) {
		for k, v := range ly.vars {
			vars[k] = v
		}
		for k, v := range ly.ssh {
			ssh[k] = v
		}
	}
	apply(l.top)
	for _, gd := range l.groups {
		if hd.member[gd] {
			h.Groups = append(h.Groups, gd.g.Name)
			apply(gd.layer)
		}
	}
	for _, e := range hd.entries {
		apply(e.layer)
	}
	h.Vars, h.Secrets = flatten(vars)
	h.SSH = transport.Config{
		Host:           h.Name,
		Address:        h.Name,
		Port:           DefaultPort,
		User:           currentUser(),
		ConnectTimeout: DefaultConnectTimeout,
		HostKeyCheck:   DefaultHostKeyCheck,
	}
	if hd.address != "" {
		h.SSH.Address = hd.address
	}
	for k, s := range ssh {
		setSSH(&h.SSH, k, s.v)
	}
	return ssh
}

// jumps resolves each host's ssh.jump: an inventory host (by name or
// alias, its own jump host first) or [user@]host[:port].
func (l *loader) jumps(settings map[*Host]map[string]setting) {
	done := map[*Host]bool{}
	var jump func(h *Host, chain []string)
	jump = func(h *Host, chain []string) {
		if done[h] {
			return
		}
		defer func() { done[h] = true }()
		s, ok := settings[h]["jump"]
		if !ok {
			return
		}
		spec := s.v.(string)
		target := l.inv.Host(spec)
		switch {
		case target == h:
			l.d.Errorf(s.n, "host %q uses itself as its jump host", h.Name)
		case target != nil && contains(chain, target.Name):
			l.d.Errorf(s.n, "jump host cycle: %s", strings.Join(append(chain, h.Name, target.Name), " -> "))
		case target != nil:
			jump(target, append(chain, h.Name))
			j := target.SSH
			h.SSH.Jump = &j
		default:
			j, err := parseJump(spec, h.SSH)
			if err != nil {
				l.d.Errorf(s.n, "ssh.jump: %v", err)
			} else {
				h.SSH.Jump = j
			}
		}
	}
	for _, h := range l.inv.Hosts {
		jump(h, nil)
	}
}

// parseJump parses [user@]host[:port]; the jump host inherits the target's
// user, key and host-key settings.
func parseJump(spec string, from transport.Config) (*transport.Config, error) {
	j := transport.Config{
		User:           from.User,
		Port:           DefaultPort,
		PrivateKey:     from.PrivateKey,
		PassphraseEnv:  from.PassphraseEnv,
		Agent:          from.Agent,
		ConnectTimeout: from.ConnectTimeout,
		HostKeyCheck:   from.HostKeyCheck,
		KnownHosts:     from.KnownHosts,
	}
	rest := spec
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		j.User, rest = rest[:i], rest[i+1:]
		if j.User == "" {
			return nil, fmt.Errorf("empty user in %q", spec)
		}
	}
	host := rest
	if strings.HasPrefix(rest, "[") || strings.Count(rest, ":") == 1 {
		h, p, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, fmt.Errorf("%q is not an inventory host or [user@]host[:port]", spec)
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("invalid port %q in %q", p, spec)
		}
		host, j.Port = h, port
	}
	if host == "" || strings.ContainsAny(host, " /@") {
		return nil, fmt.Errorf("%q is not an inventory host or [user@]host[:port]", spec)
	}
	j.Host, j.Address = host, host
	return &j, nil
}

func setSSH(c *transport.Config, key string, v any) {
	switch key {
	case "user":
		c.User = v.(string)
	case "port":
		c.Port = v.(int)
	case "private_key":
		c.PrivateKey = v.(string)
	case "passphrase_env":
		c.PassphraseEnv = v.(string)
	case "agent":
		c.Agent = v.(bool)
	case "jump":
		c.JumpSpec = v.(string)
	case "connect_timeout":
		c.ConnectTimeout = v.(time.Duration)
	case "sudo":
		c.Sudo = v.(bool)
	case "sudo_password_env":
		c.SudoPasswordEnv = v.(string)
	case "host_key_check":
		c.HostKeyCheck = v.(string)
	case "known_hosts":
		c.KnownHosts = v.(string)
	}
}

// flatten returns plain vars and the paths ("vars.x", "vars.db.password")
// of the values read from the environment, sorted.
func flatten(vars map[string]varVal) (map[string]any, []string) {
	out := make(map[string]any, len(vars))
	var secrets []string
	for _, k := range yamldoc.SortedKeys(vars) {
		v := vars[k]
		out[k] = v.v
		for _, sub := range v.secrets {
			secrets = append(secrets, joinPath("vars."+k, sub))
		}
	}
	return out, secrets
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
