package inventory

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/transport"
)

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
