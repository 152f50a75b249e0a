// Package render evaluates the Go templates inside plans, roles and template
// files: text/template with missingkey=error and a small curated function
// set. Nothing here reads the clock, the environment or randomness, so the
// same inputs always render the same bytes (render → compare → write only on
// change depends on that).
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/goccy/go-yaml"
	"github.com/troupe/troupe/internal/transport"
)

// Funcs is the curated function set available to every template.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"join":      join,
		"split":     strings.Split,
		"default":   dflt,
		"required":  required,
		"quote":     ShellQuote,
		"lower":     strings.ToLower,
		"upper":     strings.ToUpper,
		"trim":      strings.TrimSpace,
		"replace":   func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"contains":  func(sub string, s any) bool { return strings.Contains(fmt.Sprint(s), sub) },
		"hasPrefix": func(prefix string, s any) bool { return strings.HasPrefix(fmt.Sprint(s), prefix) },
		"indent":    indent,
		"toJSON":    toJSON,
		"toYAML":    toYAML,
		"keys":      keys,
		"list":      func(v ...any) []any { return v },
		"has":       has,
		"get":       get,
		"batch":     batch,
		"sub":       func(a, b int) int { return a - b },
		"major":     major,
	}
}

// Amount parses "N" or "N%" of total (a percentage rounds down), as serial
// and max_failures take it.
func Amount(s string, total int) (int, error) {
	if s == "" {
		return 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return 0, fmt.Errorf("%q: want N or N%% (0-100)", s)
		}
		return int(math.Floor(v / 100 * float64(total))), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want N or N%%", s)
	}
	return v, nil
}

// major is the leading number of a package version after any epoch:
// "1:8.10.0-5" → 8, "7.23.0-1+deb12u1" → 7; -1 when there is none.
func major(v string) int {
	if _, rest, ok := strings.Cut(v, ":"); ok {
		v = rest
	}
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil {
		return -1
	}
	return n
}

// batch is the size of a serial batch of total hosts: Amount, at least 1 —
// what the runner will use, so a plan can check capacity before it starts.
func batch(spec any, total int) (int, error) {
	n, err := Amount(strings.TrimSpace(fmt.Sprint(spec)), total)
	return max(n, 1), err
}

var cache sync.Map // template text → *template.Template

// String renders one template text against data. Texts without "{{" are
// returned as they are, without parsing. A failure of a template that reads
// a top-level key data does not hold is an *AbsentError.
func String(text string, data any) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&limited{&b}, data); err != nil {
		return "", absent(t, data, err, cleanErr(err))
	}
	return b.String(), nil
}

// File renders a template file's content; name appears in error messages.
func File(name, text string, data any) ([]byte, error) {
	t, err := parseFile(name, text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&limited{&b}, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CheckFile parses a template file's content without rendering it, so a
// syntax error is found when the plan is loaded rather than on a host.
func CheckFile(name, text string) error {
	_, err := parseFile(name, text)
	return err
}

func parseFile(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(Funcs()).Parse(text)
}

// Bool renders a condition and requires "true" or "false".
func Bool(text string, data any) (bool, error) {
	out, err := String(text, data)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(out) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("condition %q rendered %q; want true or false", text, strings.TrimSpace(out))
}

func parse(text string) (*template.Template, error) {
	if t, ok := cache.Load(text); ok {
		return t.(*template.Template), nil
	}
	t, err := template.New("").Option("missingkey=error").Funcs(Funcs()).Parse(text)
	if err != nil {
		return nil, cleanErr(err)
	}
	cache.Store(text, t)
	return t, nil
}

// cleanErr drops the anonymous template's empty name prefix ("template: :1:3: ").
func cleanErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	msg = strings.TrimPrefix(msg, ":")
	return fmt.Errorf("template: %s", msg)
}

// ShellQuote quotes s for a POSIX shell: as it is when every character is
// one a shell gives no meaning, else with transport.Quote, troupe's one
// shell quoter.
func ShellQuote(s any) string {
	str := fmt.Sprint(s)
	if str != "" && strings.Trim(str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return str
	}
	return transport.Quote(str)
}

func join(sep string, v any) (string, error) {
	switch l := v.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: want a list, got %T", v)
}

func dflt(def, v any) any {
	if v == nil {
		return def
	}
	if s, ok := v.(string); ok && s == "" {
		return def
	}
	return v
}

func required(msg string, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("%s", msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, fmt.Errorf("%s", msg)
	}
	return v, nil
}

// MaxOutput bounds what one template may render: `{{ range 1000000000 }}`
// must fail, not exhaust the machine's memory.
const MaxOutput = 16 << 20

// limited is a buffer that refuses to grow past MaxOutput.
type limited struct{ b *bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > MaxOutput {
		return 0, fmt.Errorf("template output larger than %d MiB", MaxOutput>>20)
	}
	return l.b.Write(p)
}

// maxIndent bounds indent's padding for the same reason.
const maxIndent = 1000

func indent(n int, s string) (string, error) {
	if n < 0 || n > maxIndent {
		return "", fmt.Errorf("indent %d: want 0 to %d", n, maxIndent)
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n"), nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func toYAML(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return strings.TrimSuffix(string(b), "\n"), err
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// get returns m[k], or def when m has no key k: missingkey=error makes
// `default "x" .vars.k` fail on an absent key, so optional vars use
// `get .vars "k" "x"`.
func get(m any, k string, def any) any {
	if mm, ok := m.(map[string]any); ok {
		if v, ok := mm[k]; ok && v != nil {
			return v
		}
	}
	return def
}

// has reports whether map m has key k (missingkey=error makes `.vars.x`
// fail on absent keys; `has "x" .vars` is the way to test for one).
// has says whether map m has key k, or list m holds k (`has "compilers"
// .host.groups`).
func has(k string, m any) bool {
	switch m := m.(type) {
	case map[string]any:
		_, ok := m[k]
		return ok
	case []any:
		return slices.ContainsFunc(m, func(v any) bool { return v == any(k) })
	case []string:
		return slices.Contains(m, k)
	}
	return false
}
