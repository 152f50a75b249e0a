package puppet

import (
	"regexp"
	"strings"
)

// r10k turns branch names into environment names by replacing every
// non-word character with "_" (R10K::Environment::Name, default settings).
var nonWord = regexp.MustCompile(`\W`)

// EnvName is the environment r10k deploys branch into.
func EnvName(branch string) string { return nonWord.ReplaceAllString(branch, "_") }

// ParseHeads reads `git ls-remote --heads` output: environment name →
// commit for every branch of the control repository.
func ParseHeads(out string) map[string]string {
	heads := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		sha, ref, ok := strings.Cut(strings.TrimSpace(l), "\t")
		if !ok || !strings.HasPrefix(ref, "refs/heads/") {
			continue
		}
		heads[EnvName(strings.TrimPrefix(ref, "refs/heads/"))] = sha
	}
	return heads
}
