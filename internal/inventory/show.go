package inventory

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/yamldoc"
)

// sensitiveWords mark a var as secret by its key alone.
var sensitiveWords = []string{"password", "passphrase", "secret", "token"}

// IsSensitiveKey reports whether a var key names a secret by convention
// (it contains password, passphrase, secret or token).
func IsSensitiveKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range sensitiveWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// SecretValues returns every value of the inventory that is a secret: vars
// read from the environment and string vars under a sensitive key, for the
// run's redactor.
func (inv *Inventory) SecretValues() []string {
	seen := map[string]bool{}
	var out []string
	add := func(vars map[string]any, paths []string) {
		collectSecrets(vars, "vars", paths, false, func(s string) {
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		})
	}
	add(inv.Vars, inv.Secrets)
	for _, g := range inv.Groups {
		add(g.Vars, g.Secrets)
	}
	for _, h := range inv.Hosts {
		add(h.Vars, h.Secrets)
	}
	sort.Strings(out)
	return out
}

func collectSecrets(v any, p string, paths []string, under bool, fn func(string)) {
	under = under || contains(paths, p)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			collectSecrets(e, p+"."+k, paths, under || IsSensitiveKey(k), fn)
		}
	case []any:
		for i, e := range x {
			collectSecrets(e, p+"."+strconv.Itoa(i), paths, under, fn)
		}
	case string:
		if under {
			fn(x)
		}
	default:
		if under && v != nil {
			fn(fmt.Sprint(v))
		}
	}
}

// Show writes the resolved inventory (vars, groups, hosts with their SSH
// settings) in a YAML-like form; secrets are masked.
func (inv *Inventory) Show(w io.Writer) {
	fmt.Fprintf(w, "# inventory %s: %d hosts, %d groups\n", inv.File, len(inv.Hosts), len(inv.Groups))
	if len(inv.Vars) > 0 {
		fmt.Fprintln(w, "vars:")
		writeVars(w, "  ", inv.Vars, inv.Secrets)
	}
	if len(inv.Groups) > 0 {
		fmt.Fprintln(w, "groups:")
		for _, g := range inv.Groups {
			fmt.Fprintf(w, "  %s:\n", g.Name)
			if g.Parent != "" {
				fmt.Fprintf(w, "    parent: %s\n", g.Parent)
			}
			if len(g.Children) > 0 {
				fmt.Fprintf(w, "    groups: [%s]\n", strings.Join(g.Children, ", "))
			}
			fmt.Fprintf(w, "    targets: [%s]\n", strings.Join(g.Targets, ", "))
			if len(g.Vars) > 0 {
				fmt.Fprintln(w, "    vars:")
				writeVars(w, "      ", g.Vars, g.Secrets)
			}
		}
	}
	fmt.Fprintln(w, "hosts:")
	for _, h := range inv.Hosts {
		fmt.Fprintf(w, "  %s:\n", h.Name)
		if len(h.Aliases) > 0 {
			fmt.Fprintf(w, "    aliases: [%s]\n", strings.Join(h.Aliases, ", "))
		}
		if len(h.Groups) > 0 {
			fmt.Fprintf(w, "    groups: [%s]\n", strings.Join(h.Groups, ", "))
		}
		c := h.SSH
		fmt.Fprintln(w, "    ssh:")
		kv := func(k string, v any) { fmt.Fprintf(w, "      %s: %v\n", k, v) }
		kv("address", c.Address)
		kv("port", c.Port)
		kv("user", c.User)
		if c.PrivateKey != "" {
			kv("private_key", c.PrivateKey)
		}
		if c.PassphraseEnv != "" {
			kv("passphrase_env", c.PassphraseEnv)
		}
		if c.Agent {
			kv("agent", true)
		}
		if c.JumpSpec != "" {
			j := c.JumpSpec
			if c.Jump != nil {
				j = fmt.Sprintf("%s (%s@%s:%d)", j, c.Jump.User, c.Jump.Address, c.Jump.Port)
			}
			kv("jump", j)
		}
		kv("connect_timeout", c.ConnectTimeout)
		if c.Sudo {
			kv("sudo", true)
		}
		if c.SudoPasswordEnv != "" {
			kv("sudo_password_env", c.SudoPasswordEnv)
		}
		kv("host_key_check", c.HostKeyCheck)
		if c.KnownHosts != "" {
			kv("known_hosts", c.KnownHosts)
		}
		if len(h.Vars) > 0 {
			fmt.Fprintln(w, "    vars:")
			writeVars(w, "      ", h.Vars, h.Secrets)
		}
	}
}

func writeVars(w io.Writer, indent string, vars map[string]any, secrets []string) {
	for _, k := range yamldoc.SortedKeys(vars) {
		fmt.Fprintf(w, "%s%s: %s\n", indent, k, formatValue(vars[k], "vars."+k, secrets, IsSensitiveKey(k)))
	}
}

// formatValue renders v in YAML flow style, masking secrets.
func formatValue(v any, p string, secrets []string, masked bool) string {
	if masked || contains(secrets, p) {
		if v == nil {
			return "null"
		}
		return secret.Mask
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range yamldoc.SortedKeys(x) {
			parts = append(parts, k+": "+formatValue(x[k], p+"."+k, secrets, IsSensitiveKey(k)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, 0, len(x))
		for i, e := range x {
			parts = append(parts, formatValue(e, p+"."+strconv.Itoa(i), secrets, false))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return quoteIfNeeded(x)
	}
	return fmt.Sprint(v)
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`\n") || strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	switch strings.ToLower(s) {
	case "true", "false", "null", "yes", "no", "~":
		return strconv.Quote(s)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.Quote(s)
	}
	return s
}
