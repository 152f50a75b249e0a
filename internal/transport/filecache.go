package transport

import (
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/melbahja/goph"
	skh "github.com/skeema/knownhosts"
)

// A fan-out dials every host with the same known_hosts file and private key.
// Parsed once per dial, the known_hosts file alone costs N hosts × N lines
// (twice: for the host key algorithms, then for the check); so each file is
// parsed once while it is unchanged (same size, mtime and inode), and again
// as soon as it changes (accept-new appends to it; ssh-keygen -R replaces it).

// fileVersion tells whether a file changed since it was parsed.
type fileVersion struct {
	size int64
	mod  time.Time
	ino  uint64
}

func versionOf(fi fs.FileInfo) fileVersion {
	v := fileVersion{size: fi.Size(), mod: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v.ino = st.Ino
	}
	return v
}

// fileCache maps a key (a path, with whatever else the parse depends on) to
// what the file parsed to, at the version it had.
type fileCache[T any] struct {
	mu sync.Mutex
	m  map[string]cached[T]
}

type cached[T any] struct {
	v   fileVersion
	val T
}

// load returns the parse of path for key, parsing it again when the file
// changed. A parse error is not kept. The version is read before the parse:
// a change during the parse only costs one more parse next time.
func (c *fileCache[T]) load(key, path string, parse func() (T, error)) (T, error) {
	var zero T
	fi, err := os.Stat(path)
	if err != nil {
		return zero, err
	}
	v := versionOf(fi)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && e.v == v {
		return e.val, nil
	}
	val, err := parse()
	if err != nil {
		return zero, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cached[T]{}
	}
	c.m[key] = cached[T]{v, val}
	c.mu.Unlock()
	return val, nil
}

var (
	knownHostsFiles fileCache[*skh.HostKeyDB]
	privateKeys     fileCache[goph.Auth]
)

// parseKey is goph.Key, parsed once per file version and passphrase.
func parseKey(path, passphrase string) (goph.Auth, error) {
	return privateKeys.load(path+"\x00"+passphrase, path, func() (goph.Auth, error) { return goph.Key(path, passphrase) })
}
