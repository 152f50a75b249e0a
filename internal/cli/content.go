package cli

import (
	"errors"
	"io/fs"
	"os"
	"sort"

	troupe "github.com/troupe/troupe"
)

// overlay is the plans' content: files on disk under dir win over the ones
// embedded in the binary, so an operator can edit a shipped role without
// rebuilding, and add plans of their own.
type overlay struct {
	disk     fs.FS // nil when there is no override directory
	embedded fs.FS
}

// contentFS returns the overlay for dir ("" = the current directory, used
// only when it holds plans/ or roles/).
func contentFS(dir string) fs.FS {
	o := overlay{embedded: troupe.Content}
	if dir == "" {
		dir = "."
		if !isDir("plans") && !isDir("roles") {
			return o
		}
	}
	o.disk = os.DirFS(dir)
	return o
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
