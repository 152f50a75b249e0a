// Package safefile is how troupe writes files on this machine (journal,
// debug log, downloads, known_hosts) and checks the content it reads (plans
// and roles from disk): only in directories no other local user can change.
//
// A directory is trusted when it and every directory above it are owned by
// the caller (effective uid) or root; the directory written in must not be
// group- or world-writable, and a directory above it only when it is sticky
// (like /tmp: others cannot rename or remove what is ours in it). A
// symbolic link on the way is followed only when the caller or root owns
// it, since only they could have put it there. Missing directories are
// created with mode 0700. Files are created exclusively under a fresh name
// and renamed into place (O_EXCL never follows a link, rename replaces one),
// or opened O_NOFOLLOW; a planted link is never written through.
//
// It is a leaf package so that every layer (cli, runner, step, report,
// transport) uses the same checks instead of its own.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
)

// UnsafeError is a refusal: Path is the directory or file that cannot be
// trusted, Reason says why.
type UnsafeError struct {
	Path   string
	Reason string
}

func (e *UnsafeError) Error() string {
	return e.Path + ": " + e.Reason
}

// uid is the caller's effective uid; a variable so tests can play another
// user without changing theirs.
var uid = os.Geteuid()

func trustedOwner(owner uint32) bool { return owner == 0 || int(owner) == uid }

func ownerName(id uint32) string {
	if u, err := user.LookupId(fmt.Sprint(id)); err == nil {
		return fmt.Sprintf("uid %d (%s)", id, u.Username)
	}
	return fmt.Sprintf("uid %d", id)
}

// checkOwner refuses an entry owned by anyone but the caller or root.
func checkOwner(path string, st *syscall.Stat_t, what string) error {
	if trustedOwner(st.Uid) {
		return nil
	}
	return &UnsafeError{path, fmt.Sprintf("%s is owned by %s, not by you (uid %d) or root, so another local user controls it", what, ownerName(st.Uid), uid)}
}

// checkMode refuses a group- or world-writable directory or file; a sticky
// directory above the one written in is allowed.
func checkMode(path string, fi fs.FileInfo, above bool) error {
	m := fi.Mode()
	if m.Perm()&0o022 == 0 || (above && m&fs.ModeSticky != 0) {
		return nil
	}
	who := "world-writable"
	if m.Perm()&0o002 == 0 {
		who = "group-writable"
	}
	what := "it"
	if fi.IsDir() {
		what = "what is in it"
	}
	return &UnsafeError{path, fmt.Sprintf("it is %s (mode %04o), so other local users can change %s; run chmod go-w %s, or use another directory", who, m.Perm(), what, path)}
}

// walk resolves path component by component from the root, following only
// trusted symbolic links and checking every directory; with create it makes
// the missing ones (0700). It returns the real path of the directory.
func walk(path string, create bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	todo := strings.Split(abs, "/")
	cur := "/"
	if err := checkDir(cur, true); err != nil {
		return "", err
	}
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is real: the kernel's ".." too
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) && create {
			if err = os.Mkdir(next, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
				fi, err = os.Lstat(next) // made here, or by a racer: checked below either way
			}
		}
		if err != nil {
			return "", err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeSymlink != 0 {
			if err := checkOwner(next, st, "the symbolic link "+next); err != nil {
				return "", err
			}
			if links++; links > 40 {
				return "", &UnsafeError{abs, "too many symbolic links"}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !fi.IsDir() {
			return "", &UnsafeError{next, "not a directory"}
		}
		if err := checkOwner(next, st, "it"); err != nil {
			return "", err
		}
		if err := checkMode(next, fi, true); err != nil {
			return "", err
		}
		cur = next
	}
	// the directory itself: sticky is not enough for what is written in it
	if err := checkDir(cur, false); err != nil {
		return "", err
	}
	return cur, nil
}

func checkDir(path string, above bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if err := checkOwner(path, fi.Sys().(*syscall.Stat_t), "it"); err != nil {
		return err
	}
	return checkMode(path, fi, above)
}

// MkdirAll makes dir (missing parts mode 0700) and checks that it can be
// trusted; it returns dir's real path, the one to write under.
func MkdirAll(dir string) (string, error) { return walk(dir, true) }

// CheckDir checks that dir can be trusted without creating anything; a
// missing directory is an error that wraps fs.ErrNotExist.
func CheckDir(dir string) (string, error) { return walk(dir, false) }

// CreateTemp creates a fresh file beside path (in its directory, made and
// checked by MkdirAll), exclusively and mode 0600, for the caller to fill
// and then rename onto path with os.Rename. A rename replaces whatever is
// at path, a planted link included, without following it.
func CreateTemp(path string) (*os.File, error) {
	dir, err := MkdirAll(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
}

// WriteFile writes data to path through a fresh file renamed into place,
// in a directory MkdirAll made and checked; the file ends with mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := CreateTemp(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(filepath.Dir(f.Name()), filepath.Base(path)))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// OpenAppend opens path for appending, creating it with mode perm, in a
// directory MkdirAll made and checked. It never follows a link at path and
// refuses a file that is not a regular file owned by the caller or root.
func OpenAppend(path string, perm fs.FileMode) (*os.File, error) {
	dir, err := MkdirAll(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	real := filepath.Join(dir, filepath.Base(path))
	f, err := os.OpenFile(real, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &UnsafeError{real, "it is a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	if err := CheckFile(real, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// CheckFile refuses an open file that is not a regular file owned by the
// caller or root, or that is group- or world-writable.
func CheckFile(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &UnsafeError{path, "not a regular file"}
	}
	if err := checkOwner(path, fi.Sys().(*syscall.Stat_t), "it"); err != nil {
		return err
	}
	return checkMode(path, fi, false)
}

// CheckTree checks that root can be trusted (as CheckDir) and so can every
// directory and file under it: owned by the caller or root, not group- or
// world-writable; a symbolic link under it only when the caller or root
// owns it and what it points to passes the same checks. For content read
// from disk: nobody else may have put or changed it.
func CheckTree(root string) error { return checkTree(root, 0) }

func checkTree(root string, depth int) error {
	if depth > 40 {
		return &UnsafeError{root, "too many symbolic links"}
	}
	real, err := CheckDir(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return checkLinked(p, depth+1)
		}
		return checkEntry(p, fi)
	})
}

// checkLinked follows the symbolic link p (owned by the caller or root) and
// checks what it points to, its directories included.
func checkLinked(p string, depth int) error {
	for hops := 0; hops < 40; hops++ {
		dir, err := CheckDir(filepath.Dir(p))
		if err != nil {
			return err
		}
		real := filepath.Join(dir, filepath.Base(p))
		fi, err := os.Lstat(real)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if fi.IsDir() {
				return checkTree(real, depth)
			}
			return checkEntry(real, fi)
		}
		if err := checkOwner(real, fi.Sys().(*syscall.Stat_t), "the symbolic link "+real); err != nil {
			return err
		}
		t, err := os.Readlink(real)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(dir, t)
		}
		p = t
	}
	return &UnsafeError{p, "too many symbolic links"}
}

func checkEntry(p string, fi fs.FileInfo) error {
	if err := checkOwner(p, fi.Sys().(*syscall.Stat_t), "it"); err != nil {
		return err
	}
	return checkMode(p, fi, false)
}

// Home is the caller's home directory: $HOME, else the user database's
// entry for the effective uid (a root timer or unit often has no $HOME).
// Never a shared fallback such as the temporary directory.
func Home() (string, error) {
	if h := os.Getenv("HOME"); h != "" {
		return h, nil
	}
	u, err := lookupUID(fmt.Sprint(uid))
	if err != nil {
		return "", fmt.Errorf("$HOME is not set and uid %d has no entry in the user database: %w", uid, err)
	}
	if !filepath.IsAbs(u.HomeDir) {
		return "", fmt.Errorf("$HOME is not set and the user database gives uid %d no home directory (%q)", uid, u.HomeDir)
	}
	return u.HomeDir, nil
}

var lookupUID = user.LookupId
