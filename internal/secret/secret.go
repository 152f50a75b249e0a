// Package secret masks secret values (secret params, passwords, passphrases,
// key material) in every string and stream before it is printed or logged.
package secret

import (
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret wherever it appears.
const Mask = "********"

// MinLen is the shortest secret masked: a 1-3 character "secret" would mask
// every "a" or "ok" in the output, garbling it while hiding nothing.
const MinLen = 4

// Redactor knows the secrets of one run. The zero value is ready to use and
// safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so a secret containing another is masked whole
	short   int      // secrets given that were too short to mask
}

// Add registers secrets. Each line of a multi-line secret is registered too,
// because output often arrives (and is reported) a line at a time. Empty
// values are ignored; values shorter than MinLen are counted (see TooShort)
// and not masked.
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if len(v) < MinLen {
			r.short++
			continue
		}
		r.add(v)
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= MinLen {
					r.add(line)
				}
			}
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

func (r *Redactor) add(v string) {
	for _, s := range r.secrets {
		if s == v {
			return
		}
	}
	r.secrets = append(r.secrets, v)
}

// TooShort is how many secrets were too short to be masked, for a warning.
func (r *Redactor) TooShort() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.short
}

// Contains reports whether s holds a known secret.
func (r *Redactor) Contains(s string) bool {
	return r.String(s) != s
}

// String masks every known secret in s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Mask)
		}
	}
	return s
}

// Value returns a copy of v (decoded JSON or YAML: maps, lists, scalars)
// with every string, map keys included, masked.
func (r *Redactor) Value(v any) any {
	switch x := v.(type) {
	case string:
		return r.String(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.Value(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[r.String(k)] = r.Value(e)
		}
		return out
	}
	return v
}
