package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// push is what a push event says, whoever sent it.
type push struct {
	Provider string
	Branch   string // "" for tags and other refs
	Commit   string
	Deleted  bool
}

// provider is one forge's way of naming and signing its events.
type provider struct {
	name string
	// event is the header naming the event kind and the value of a push.
	eventHeader, pushEvent string
	// verify checks the request against the shared secret; the error says
	// why it failed without quoting anything from the body.
	verify func(h http.Header, body, secret []byte) error
}

var errUnsigned = errors.New("no signature header")

// providers are tried in order. Gitea and Forgejo also send GitHub's
// headers for compatibility, so they come first: their own signature is the
// one they always send.
var providers = []provider{
	{"forgejo", "X-Forgejo-Event", "push", hexHMAC("X-Forgejo-Signature", "")},
	{"gitea", "X-Gitea-Event", "push", hexHMAC("X-Gitea-Signature", "")},
	{"gitlab", "X-Gitlab-Event", "Push Hook", gitlabToken},
	{"github", "X-GitHub-Event", "push", hexHMAC("X-Hub-Signature-256", "sha256=")},
}

// detect names the sender by its event header; nil when none matches.
func detect(h http.Header) *provider {
	for i := range providers {
		if h.Get(providers[i].eventHeader) != "" {
			return &providers[i]
		}
	}
	return nil
}

// hexHMAC verifies a hex HMAC-SHA256 of the body in header (after prefix).
func hexHMAC(header, prefix string) func(http.Header, []byte, []byte) error {
	return func(h http.Header, body, secret []byte) error {
		v := h.Get(header)
		if v == "" {
			return errUnsigned
		}
		got, err := hex.DecodeString(strings.TrimPrefix(v, prefix))
		if err != nil || !strings.HasPrefix(v, prefix) {
			return errors.New("malformed " + header)
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if !hmac.Equal(got, m.Sum(nil)) {
			return errors.New("wrong " + header)
		}
		return nil
	}
}

// gitlabToken compares GitLab's plain token in constant time: GitLab does
// not sign bodies, it sends the secret itself (over TLS, one hopes).
func gitlabToken(h http.Header, _, secret []byte) error {
	v := h.Get("X-Gitlab-Token")
	if v == "" {
		return errUnsigned
	}
	if subtle.ConstantTimeCompare([]byte(v), secret) != 1 {
		return errors.New("wrong X-Gitlab-Token")
	}
	return nil
}

// zeroSHA is the "after" of a deleted branch on all three forges.
var zeroSHA = regexp.MustCompile(`^0+$`)

// commitID is a SHA-1 or SHA-256 object name, as the forges send it.
var commitID = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)

// maxRef bounds a pushed ref: git has no limit, but a branch is a file name
// under refs/heads and an r10k environment a directory, at most 255 bytes.
const maxRef = 255

// parsePush reads the fields the three forges share: ref, after (GitHub
// and Gitea also say "deleted"; GitLab only zeroes "after"). A payload is
// signed, yet its ref and after still reach logs, /status and the deploy's
// params, so both are held to what git itself produces.
func parsePush(name string, body []byte) (push, error) {
	var p struct {
		Ref     string `json:"ref"`
		After   string `json:"after"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return push{}, err
	}
	switch {
	case p.Ref == "":
		return push{}, errors.New("no ref in the payload")
	case len(p.Ref) > maxRef:
		return push{}, fmt.Errorf("ref %s is %d bytes, over %d", excerpt(p.Ref), len(p.Ref), maxRef)
	case !validRef(p.Ref):
		return push{}, fmt.Errorf("ref %s is not a valid git ref name", excerpt(p.Ref))
	case !commitID.MatchString(p.After):
		return push{}, fmt.Errorf("after %s is not a commit id (40 or 64 lower-case hex digits)", excerpt(p.After))
	}
	out := push{Provider: name, Commit: p.After, Deleted: p.Deleted || zeroSHA.MatchString(p.After)}
	out.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
	if out.Branch == p.Ref {
		out.Branch = ""
	}
	return out, nil
}

// validRef is git check-ref-format's rule for a full ref name (refs/...).
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//") {
		return false
	}
	for _, c := range ref {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	for _, part := range strings.Split(ref, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}

// excerpt quotes at most 40 bytes of a request's value for a message: the
// value may be megabytes long, or hold newlines and escape codes.
func excerpt(s string) string { return excerptN(s, 40) }

func excerptN(s string, n int) string {
	if len(s) > n {
		return strconv.Quote(s[:n]) + "..."
	}
	return strconv.Quote(s)
}

// nonWord is r10k's rule for turning a branch into an environment name
// (R10K::Environment::Name, default settings); step.PuppetCode applies the
// same rule to the remote's branches, so both sides agree on the name.
var nonWord = regexp.MustCompile(`\W`)

// Environment is the r10k environment a branch deploys to.
func Environment(branch string) string { return nonWord.ReplaceAllString(branch, "_") }

// puppetEnv is what Puppet accepts as an environment name; r10k deploys
// other names (upper case survives its rule), which no agent can then use.
var puppetEnv = regexp.MustCompile(`^[a-z0-9_]+$`)

// deliveryHeaders carry a delivery's id; a forge sends the same id again
// when it (or an operator) redelivers the event, and a replay copies it.
// Gitea sends its id under GitHub's name too; GitLab's Idempotency-Key is
// the same across its retries of one event.
var deliveryHeaders = []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gitlab-Event-UUID", "Idempotency-Key"}

// maxDeliveryID bounds an id kept in memory (forges send 36-byte UUIDs).
const maxDeliveryID = 128

// deliveryIDs are the request's delivery ids, each keyed by its header.
func deliveryIDs(h http.Header) ([]string, error) {
	var ids []string
	for _, name := range deliveryHeaders {
		v := h.Get(name)
		if v == "" {
			continue
		}
		if len(v) > maxDeliveryID || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return nil, fmt.Errorf("malformed %s %s", name, excerpt(v))
		}
		ids = append(ids, name+" "+v)
	}
	return ids, nil
}
