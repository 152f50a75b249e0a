package runner

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/troupe/troupe/internal/transport"
)

// The host lock over the connection's SFTP channel: lockScript's steps and
// verdicts, as file operations of the login user (which is who runs
// lockScript too: neither uses sudo), so taking, beating and releasing the
// lock cost the host no session of their own. SFTP's mkdir is mkdir(2):
// atomic, and it never follows a symlink.

// fileOps is c's file operations, or nil when it has none.
func fileOps(c transport.Conn) transport.FileOps {
	fo, ok := c.(transport.FileOpener)
	if !ok {
		return nil
	}
	ops, err := fo.FileOps(false)
	if err != nil {
		return nil
	}
	return ops
}

// lockFiles takes the lock like lockScript. decided is false when it cannot
// tell here, before it changed anything: lockScript then decides. That is
// the default lock of a non-root login (its $XDG_RUNTIME_DIR is known only
// to its shell), a directory owned by someone other than the uid FileOps
// guessed, and errors other than a refusal.
func lockFiles(fo transport.FileOps, l, token string, stale time.Duration) (lock string, decided bool, err error) {
	// A lock path named in the inventory is looked at while the login's
	// identity is asked for: two requests in flight, not one after another.
	var (
		da     transport.Attrs
		daErr  error
		looked = make(chan struct{})
	)
	if l != "" {
		go func() { defer close(looked); da, daErr = fo.Lstat(path.Dir(l)) }()
	} else {
		close(looked)
	}
	who, uid, err := fo.Identity()
	<-looked
	if err != nil {
		return "", false, nil
	}
	if l == "" {
		if uid != 0 {
			return "", false, nil
		}
		_ = fo.Mkdir("/run/troupe", 0o700) // exists already, or the Lstat below says what is wrong
		l = "/run/troupe/troupe.lock"
		da, daErr = fo.Lstat(path.Dir(l))
	}
	unsafe := func(format string, args ...any) (string, bool, error) {
		return "", true, fmt.Errorf("refusing the lock: "+format, args...)
	}
	d := path.Dir(l)
	err = daErr
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && !da.Mode.IsDir():
		return unsafe("%s is not a directory", d)
	case err != nil:
		return "", false, nil
	case da.UID != 0 && da.UID != uid && uid != 0:
		return "", false, nil // perhaps a wrong guess of our uid: let the shell's `id -u` tell
	case da.UID != 0 && da.UID != uid || da.Perm&0o022 != 0:
		return unsafe("%s (uid %d, mode %o) is writable by others than %s and root: another user could redirect the lock",
			d, da.UID, da.Perm, who)
	}
	owner := []byte(token + "\n")
	take := func() (bool, error) {
		if fo.Mkdir(l, 0o700) != nil {
			return false, nil
		}
		if err := fo.WriteFile(l+"/owner", owner, 0o600); err != nil {
			_ = fo.RemoveAll(l)
			return false, fmt.Errorf("cannot take the lock: %s/owner: %w", l, err)
		}
		return true, nil
	}
	if ok, err := take(); ok || err != nil {
		return l, true, err
	}
	if a, err := fo.Lstat(l); err == nil && !a.Mode.IsDir() {
		return unsafe("%s is not a lock directory", l)
	}
	now, err := hostNow(fo, d)
	if err != nil {
		return "", true, fmt.Errorf("cannot take the lock %s: %w", l, err)
	}
	age := lockAge(fo, l, now)
	if age > stale {
		// Move the stale lock aside first, as lockScript does: of two runs
		// taking it over at once only one moves it, and one that moved a
		// lock just retaken puts it back.
		t := l + ".stale." + rand.Text()
		if fo.Rename(l, t) == nil {
			if lockAge(fo, t, now) > stale {
				_ = fo.RemoveAll(t)
				if ok, err := take(); ok || err != nil {
					return l, true, err
				}
			} else {
				_ = fo.Rename(t, l)
			}
		}
	}
	holder, _ := fo.ReadFile(l+"/owner", 300)
	holder = bytes.ReplaceAll(holder, []byte("\n"), nil)
	return "", true, &LockHeldError{Holder: string(holder), Age: age.Truncate(time.Second), Path: l}
}

// lockAge is the time since the lock's owner file (or the lock) was last
// written, by the host's clock; 0 when it is gone.
func lockAge(fo transport.FileOps, l string, now time.Time) time.Duration {
	a, err := fo.Lstat(l + "/owner")
	if err != nil {
		if a, err = fo.Lstat(l); err != nil {
			return 0
		}
	}
	return now.Sub(a.ModTime)
}

// hostNow is the host's clock, read from a file written in dir: ages are
// told by the host's clock alone, as lockScript's `date` does, so a skewed
// clock here cannot make a live lock look stale.
func hostNow(fo transport.FileOps, dir string) (time.Time, error) {
	p := dir + "/.troupe-clock-" + rand.Text()
	if err := fo.WriteFile(p, nil, 0o600); err != nil {
		return time.Time{}, err
	}
	defer fo.RemoveAll(p)
	a, err := fo.Lstat(p)
	return a.ModTime, err
}

// releaseFiles removes the lock l if it is still ours. An error means it
// could not tell or could not remove it.
func releaseFiles(fo transport.FileOps, l, token string) error {
	// Exactly as much as ours would hold: the read fills the buffer in one
	// request (a larger buffer costs a second, to meet the end of the file).
	// Tokens hold no newline, so no other run's file starts with ours.
	b, err := fo.ReadFile(l+"/owner", len(token)+1)
	if errors.Is(err, fs.ErrNotExist) || err == nil && string(b) != token+"\n" {
		return nil // gone, or taken over as stale: not ours
	}
	if err != nil {
		return err
	}
	if err := fo.Remove(l + "/owner"); err != nil {
		return err
	}
	return fo.RemoveDir(l)
}
