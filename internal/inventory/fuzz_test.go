package inventory

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/troupe/troupe/internal/corpus"
)

// FuzzLoadInventory: whatever the file holds, loading ends with an
// inventory whose selectors work or an error of short lines. Seeds: the
// hostile corpus and the test inventories.
func FuzzLoadInventory(f *testing.F) {
	for _, b := range corpus.Files("../../fixtures/hostile/inventory/*.yaml", "../../fixtures/inventory/*.yaml") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, err := LoadBytes("f.yaml", src)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if n := utf8.RuneCountInString(line); n > 1200 {
					t.Fatalf("error line of %d characters", n)
				}
			}
			return
		}
		inv.Select("all")
		inv.SecretValues()
	})
}
