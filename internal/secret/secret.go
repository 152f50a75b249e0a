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

// Redactor knows the secrets of one run. The zero value is ready to use and
// safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so a secret containing another is masked whole
}

// Add registers secrets; empty and very short values are ignored because
// masking them would garble ordinary output (a 1-2 character "secret" is
// not one worth hiding and would mask every "a" in the log).
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < 3 {
			continue
		}
		for _, s := range r.secrets {
			if s == v {
				v = ""
				break
			}
		}
		if v != "" {
			r.secrets = append(r.secrets, v)
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
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
