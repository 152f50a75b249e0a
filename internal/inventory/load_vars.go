package inventory

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/troupe/troupe/internal/yamldoc"
)

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
		if p.Key == "lb_vip" {
			l.checkVIP(p.Val, v)
		}
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

// checkVIP: lb_vip is an IPv4 address, with its prefix length (the
// keepalived.conf, status and lab read it so: 10.0.0.29/24).
func (l *loader) checkVIP(n ast.Node, v any) {
	s, _ := v.(string)
	addr, _, _ := strings.Cut(s, "/")
	if a, err := netip.ParseAddr(addr); err != nil || !a.Is4() {
		l.d.Errorf(n, "var \"lb_vip\": %q is not an IPv4 address like 10.0.0.29/24 (with the prefix length of its subnet)", fmt.Sprint(v))
		return
	}
	if _, err := netip.ParsePrefix(s); strings.Contains(s, "/") && err != nil {
		l.d.Errorf(n, "var \"lb_vip\": %q: %v", s, err)
	}
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
