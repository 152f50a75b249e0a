package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"
)

// FileOps are small file operations as the login user over the connection's
// SFTP channel. That channel is opened once per connection and shared with
// uploads and downloads, so unlike Run they cost the host no new session (a
// fork and a shell in sshd): the run lock and stat probes go this way.
// Every path is taken as is; nothing follows a symlink except ReadFile and
// WriteFile (callers that care Lstat first).
type FileOps interface {
	// Identity is the login user's name and uid. The uid is 0 for root;
	// for any other login it is the owner of the login's home directory
	// (SFTP has no getuid), so callers must treat a mismatch as "unknown".
	Identity() (name string, uid uint32, err error)
	// Lstat describes p itself; a missing p wraps fs.ErrNotExist.
	Lstat(p string) (Attrs, error)
	// Mkdir makes one directory with mode; it fails when p exists in any form.
	Mkdir(p string, mode fs.FileMode) error
	// ReadFile reads up to limit bytes of a small file p in one request.
	ReadFile(p string, limit int) ([]byte, error)
	// WriteFile creates or truncates p and writes b, stamped by the host's
	// clock, with mode for a new file.
	WriteFile(p string, b []byte, mode fs.FileMode) error
	// Rename is rename(2) on the host.
	Rename(oldPath, newPath string) error
	// Remove removes a file or an empty directory.
	Remove(p string) error
	// RemoveDir removes an empty directory (one request, where Remove of
	// a directory costs two on OpenSSH: remove, then rmdir).
	RemoveDir(p string) error
	// RemoveAll removes p and, if it is a directory, what it holds.
	RemoveAll(p string) error
}

// Attrs is what Lstat tells of a path.
type Attrs struct {
	Mode     fs.FileMode // the type (IsDir, IsRegular, ModeSymlink …) and permission bits
	Perm     uint32      // st_mode & 07777: setuid, setgid and sticky too, as stat's %a shows them
	UID, GID uint32
	ModTime  time.Time
}

// FileOpener is the optional power of a Conn that has FileOps. sudo says the
// caller would run its shell commands with sudo: FileOps run as the login
// user, so they are refused unless that login is root.
type FileOpener interface {
	FileOps(sudo bool) (FileOps, error)
}

// ErrNoFileOps is returned by FileOps when the operations would not run as
// the user the caller needs; use shell commands instead.
var ErrNoFileOps = errors.New("file operations over SFTP run as the login user, not through sudo")

// FileOps returns the connection's file operations (see FileOpener). It
// fails when the host has no SFTP subsystem. They outlive a broken SFTP
// channel: the next operation opens a new one.
func (c *sshConn) FileOps(sudo bool) (FileOps, error) {
	if sudo && !c.root {
		return nil, ErrNoFileOps
	}
	if _, err := c.sftpClient(); err != nil {
		return nil, c.connErr(fmt.Errorf("sftp: %w", err))
	}
	return sftpOps{c}, nil
}

type sftpOps struct{ c *sshConn }

// do runs op on the connection's sftp client, forgetting a broken one (see
// sftpFailed).
func (o sftpOps) do(op func(sc *sftp.Client) error) error {
	sc, err := o.c.sftpClient()
	if err != nil {
		return err
	}
	err = op(sc)
	if err != nil {
		o.c.sftpFailed(sc, err)
	}
	return err
}

func (o sftpOps) Identity() (string, uint32, error) {
	if o.c.root {
		return "root", 0, nil
	}
	var home string
	err := o.do(func(sc *sftp.Client) (err error) {
		home, err = sc.Getwd() // sftp-server starts in the home directory
		return err
	})
	if err != nil {
		return "", 0, err
	}
	a, err := o.Lstat(home)
	return o.c.cfg.User, a.UID, err
}

func (o sftpOps) Lstat(p string) (a Attrs, err error) {
	err = o.do(func(sc *sftp.Client) error {
		fi, err := sc.Lstat(p)
		if err != nil {
			return err
		}
		a = Attrs{Mode: fi.Mode(), ModTime: fi.ModTime()}
		if st, ok := fi.Sys().(*sftp.FileStat); ok {
			a.UID, a.GID, a.Perm = st.UID, st.GID, st.Mode&0o7777
		}
		return nil
	})
	return a, err
}

func (o sftpOps) Mkdir(p string, mode fs.FileMode) error {
	return o.do(func(sc *sftp.Client) error {
		if err := sc.Mkdir(p); err != nil {
			return err
		}
		return sc.Chmod(p, mode)
	})
}

func (o sftpOps) ReadFile(p string, limit int) (b []byte, err error) {
	err = o.do(func(sc *sftp.Client) error {
		fh, err := sc.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		b = make([]byte, limit)
		n, err := fh.Read(b) // sftp-server answers a read of a regular file in full
		if errors.Is(err, io.EOF) {
			err = nil
		}
		b = b[:n]
		return err
	})
	return b, err
}

func (o sftpOps) WriteFile(p string, b []byte, mode fs.FileMode) error {
	return o.do(func(sc *sftp.Client) error {
		fh, err := sc.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return err
		}
		_, err = fh.ReadFrom(bytes.NewReader(b))
		if err == nil {
			err = fh.Chmod(mode)
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

func (o sftpOps) Rename(oldPath, newPath string) error {
	return o.do(func(sc *sftp.Client) error {
		if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
			return sc.PosixRename(oldPath, newPath)
		}
		return sc.Rename(oldPath, newPath)
	})
}

func (o sftpOps) Remove(p string) error {
	return o.do(func(sc *sftp.Client) error { return sc.Remove(p) })
}

func (o sftpOps) RemoveDir(p string) error {
	return o.do(func(sc *sftp.Client) error { return sc.RemoveDirectory(p) })
}

func (o sftpOps) RemoveAll(p string) error {
	return o.do(func(sc *sftp.Client) error { return sc.RemoveAll(path.Clean(p)) })
}
