package secret

import (
	"net/url"
	"strings"
)

// URLPassword is the password in a URL's user info
// (scheme://user:password@host/...) as it is written in s, found whether or
// not net/url can parse the URL: a password holding "/", "%" or "#" makes
// it fail, or parse with the password taken for a host and port. The
// textual rule then takes everything between the first ":" after
// "scheme://" and the last "@" of s, which may be more than the password
// (when the path holds an "@" too) but never less.
func URLPassword(s string) (string, bool) {
	_, pass, _, ok := splitUserinfo(s)
	return pass, ok
}

// MaskURL masks the password of a URL's user info with Mask
// (scheme://user:********@host/...), parsable or not (URLPassword).
func MaskURL(s string) string {
	head, _, tail, ok := splitUserinfo(s)
	if !ok {
		return s
	}
	return head + Mask + tail
}

// splitUserinfo cuts s around its password: head ends with "user:", tail
// starts with "@".
func splitUserinfo(s string) (head, pass, tail string, ok bool) {
	i := strings.Index(s, "://")
	if i < 0 || !validScheme(s[:i]) {
		return "", "", "", false
	}
	rest := s[i+3:]
	at := -1
	if u, err := url.Parse(s); err == nil && u.User != nil {
		// the authority ends at the path, query or fragment
		auth := rest
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			auth = rest[:j]
		}
		at = strings.LastIndexByte(auth, '@')
	} else {
		at = strings.LastIndexByte(rest, '@')
	}
	if at < 0 {
		return "", "", "", false
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 || colon+1 == at {
		return "", "", "", false // no password, or an empty one
	}
	return s[:i+3+colon+1], rest[colon+1 : at], rest[at:], true
}

// MaskURLs masks the password of every URL in free text (git's messages
// quote the remote's URL, e.g. "unable to access 'https://u:p@host/'").
// A URL runs from its scheme to the next space or quote.
func MaskURLs(text string) string {
	if !strings.Contains(text, "://") {
		return text
	}
	var b strings.Builder
	for text != "" {
		i := strings.Index(text, "://")
		if i < 0 {
			b.WriteString(text)
			break
		}
		start := i
		for start > 0 && isSchemeChar(text[start-1]) {
			start--
		}
		end := i + 3
		for end < len(text) && !strings.ContainsRune(" \t\n'\"<>`", rune(text[end])) {
			end++
		}
		b.WriteString(text[:start])
		b.WriteString(MaskURL(text[start:end]))
		text = text[end:]
	}
	return b.String()
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isSchemeChar(s[i]) {
			return false
		}
	}
	return true
}
