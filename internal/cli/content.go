package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	troupe "github.com/troupe/troupe"
	"github.com/troupe/troupe/internal/safefile"
)

// overlay is the plans' content: files on disk under dir win over the ones
// embedded in the binary, so an operator can edit a shipped role without
// rebuilding, and add plans of their own.
type overlay struct {
	disk     fs.FS // nil when there is no override directory
	embedded fs.FS
}

// contentDirs are the directories of the content on disk that are checked
// and announced: what plans and roles are read from.
var contentDirs = []string{"plans", "roles"}

// contentFS returns the overlay for dir; "" means the current directory,
// used only when cwd is true and it holds plans/ or roles/ (never for the
// webhook service: a long-running process must not pick up whatever its
// working directory holds). Content on disk runs on the hosts, so it is
// refused (ExitInvalid) when another local user could have put or changed
// it; note says which files it overrides, from where, for every run to
// announce.
func contentFS(dir string, cwd bool) (fsys fs.FS, note string, err error) {
	o := overlay{embedded: troupe.Content}
	if dir == "" {
		if !cwd || (!isDir("plans") && !isDir("roles")) {
			return o, "", nil
		}
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return o, "", nil // nothing on disk: the shipped content alone, as before
	}
	if err := checkContent(abs); err != nil {
		return nil, "", &ExitError{Code: ExitInvalid, Err: fmt.Errorf("refusing the plans and roles in %s (they would run on the hosts): %w", abs, err)}
	}
	o.disk = os.DirFS(abs)
	note, err = describeOverride(abs, o.disk)
	if err != nil {
		return nil, "", &ExitError{Code: ExitInvalid, Err: fmt.Errorf("plans and roles in %s: %w", abs, err)}
	}
	return o, note, nil
}

// checkContent refuses content another local user could have written: the
// directory (and those above it) and everything under plans/ and roles/
// must be the caller's or root's and not group- or world-writable.
func checkContent(dir string) error {
	if _, err := safefile.CheckDir(dir); err != nil {
		return err
	}
	for _, sub := range contentDirs {
		p := filepath.Join(dir, sub)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := safefile.CheckTree(p); err != nil {
			return err
		}
	}
	return nil
}

// describeOverride names the files on disk that replace shipped ones (with
// other content) or add to them; files the same as shipped are counted.
func describeOverride(dir string, disk fs.FS) (string, error) {
	var replaced, added []string
	same := 0
	var walk fs.WalkDirFunc
	walk = func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 { // checked by checkContent; followed as the loader will
			if st, err := fs.Stat(disk, p); err == nil && st.IsDir() {
				return fs.WalkDir(disk, p, walk)
			}
		}
		mine, err := fs.ReadFile(disk, p)
		if err != nil {
			return err
		}
		shipped, err := fs.ReadFile(troupe.Content, p)
		switch {
		case err != nil:
			added = append(added, p)
		case bytes.Equal(mine, shipped):
			same++
		default:
			replaced = append(replaced, p)
		}
		return nil
	}
	for _, sub := range contentDirs {
		if _, err := fs.Stat(disk, sub); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := fs.WalkDir(disk, sub, walk); err != nil {
			return "", err
		}
	}
	var parts []string
	if len(replaced) > 0 {
		parts = append(parts, "replaces "+strings.Join(replaced, ", "))
	}
	if len(added) > 0 {
		parts = append(parts, "adds "+strings.Join(added, ", "))
	}
	if same > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) the same as shipped", same))
	}
	return fmt.Sprintf("content from %s overrides the shipped plans and roles: %s", dir, strings.Join(parts, "; ")), nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func (o overlay) Open(name string) (fs.File, error) {
	if o.disk != nil {
		f, err := o.disk.Open(name)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return o.embedded.Open(name)
}

// ReadDir merges both layers; disk entries shadow embedded ones.
func (o overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	seen := map[string]fs.DirEntry{}
	var firstErr error
	for _, layer := range []fs.FS{o.embedded, o.disk} {
		if layer == nil {
			continue
		}
		es, err := fs.ReadDir(layer, name)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, e := range es {
			seen[e.Name()] = e
		}
	}
	if len(seen) == 0 && firstErr != nil {
		return nil, firstErr
	}
	out := make([]fs.DirEntry, 0, len(seen))
	for _, e := range seen {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}
