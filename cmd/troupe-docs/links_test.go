package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

var (
	fence    = regexp.MustCompile("(?s)```.*?```")
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeader = regexp.MustCompile(`(?m)^#+ (.*)$`)
)

// generatedLater are link targets written by recipes from a run's records,
// not committed with the docs that link to them (just proof).
var generatedLater = map[string]bool{"docs/proof.md": true}

// TestDocLinks checks every relative link of README.md and docs/ names a
// file of the repository and, with a #fragment, a heading of that file (as
// GitHub makes anchors from headings).
func TestDocLinks(t *testing.T) {
	root := "../.."
	files := []string{"README.md"}
	for _, pat := range []string{"docs/*.md", "docs/*/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(root, f)
			files = append(files, rel)
		}
	}
	links := 0
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(fence.ReplaceAllString(string(src), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			path, frag, _ := strings.Cut(target, "#")
			to := f
			if path != "" {
				to = filepath.Clean(filepath.Join(filepath.Dir(f), path))
			}
			body, err := os.ReadFile(filepath.Join(root, to))
			if err != nil {
				if !generatedLater[to] {
					t.Errorf("%s: link to %s: no such file", f, target)
				}
				continue
			}
			if frag != "" && strings.HasSuffix(to, ".md") && !anchorsOf(string(body))[frag] {
				t.Errorf("%s: link to %s: no heading with anchor #%s in %s", f, target, frag, to)
			}
		}
	}
	if links < 20 {
		t.Errorf("only %d relative links found: the scan is broken", links)
	}
}

func anchorsOf(md string) map[string]bool {
	out := map[string]bool{}
	for _, h := range mdHeader.FindAllStringSubmatch(fence.ReplaceAllString(md, ""), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(h[1])) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

func TestAnchorsOf(t *testing.T) {
	got := anchorsOf("# A\n## 7. Running troupe\n```\n# not a heading\n```\n### `troupe run ca-backup -i INV [-p download=DIR]`\n")
	for _, want := range []string{"a", "7-running-troupe", "troupe-run-ca-backup--i-inv--p-downloaddir"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a line in a code fence was taken for a heading")
	}
}
