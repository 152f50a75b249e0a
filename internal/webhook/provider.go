package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
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

// parsePush reads the fields the three forges share: ref, after (GitHub
// and Gitea also say "deleted"; GitLab only zeroes "after").
func parsePush(name string, body []byte) (push, error) {
	var p struct {
		Ref     string `json:"ref"`
		After   string `json:"after"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return push{}, err
	}
	if p.Ref == "" {
		return push{}, errors.New("no ref in the payload")
	}
	out := push{Provider: name, Commit: p.After, Deleted: p.Deleted || zeroSHA.MatchString(p.After)}
	out.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
	if out.Branch == p.Ref {
		out.Branch = ""
	}
	return out, nil
}

// nonWord is r10k's rule for turning a branch into an environment name
// (R10K::Environment::Name, default settings); step.PuppetCode applies the
// same rule to the remote's branches, so both sides agree on the name.
var nonWord = regexp.MustCompile(`\W`)

// Environment is the r10k environment a branch deploys to.
func Environment(branch string) string { return nonWord.ReplaceAllString(branch, "_") }
