// Package corpus reads the test inputs (fixtures/hostile and the test plans
// and inventories) that seed the fuzz targets; it is used by tests only.
package corpus

import (
	"os"
	"path/filepath"
)

// Files returns the contents of the files matching the glob patterns.
func Files(patterns ...string) [][]byte {
	var out [][]byte
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}
