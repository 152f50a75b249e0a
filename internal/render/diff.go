package render

import "github.com/aymanbagabas/go-udiff"

// Diff is a unified diff from old to new for path ("" when equal).
func Diff(path, old, new string) string {
	if old == new {
		return ""
	}
	return udiff.Unified(path+" (remote)", path+" (rendered)", old, new)
}
