package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/pkg/sftp"
)

// sftpClient returns the connection's sftp client, opening it on first use.
// It returns an error when the subsystem is unavailable; callers then fall
// back to exec (`cat`). A refused subsystem is remembered.
func (c *sshConn) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	if c.sftpErr != nil {
		return nil, c.sftpErr
	}
	sc, err := c.client.NewSftp(sftp.UseConcurrentWrites(true))
	if err != nil {
		if strings.Contains(err.Error(), "subsystem request failed") {
			c.sftpErr = err
		}
		return nil, err
	}
	c.sftp = sc
	return sc, nil
}

// sftpFailed forgets a client whose connection broke, so the next call reopens it.
func (c *sshConn) sftpFailed(sc *sftp.Client, err error) {
	if !errors.Is(err, sftp.ErrSSHFxConnectionLost) && !errors.Is(err, io.EOF) {
		return
	}
	c.sftpMu.Lock()
	if c.sftp == sc {
		c.sftp = nil
		sc.Close()
	}
	c.sftpMu.Unlock()
}

// Upload writes f atomically (see Conn.Upload). Logged in as root, or without
// f.Sudo: sftp write to DIR/.NAME.troupe-tmp-RANDOM (see tempPrefix), chown, chmod, then
// posix-rename over the destination. With f.Sudo as a non-root user: staged
// in ~/.cache/troupe/stage-RANDOM (0700), then `install` + `mv -f` via sudo.
// Without the sftp subsystem the content goes through `cat` over exec.
func (c *sshConn) Upload(ctx context.Context, f File) error {
	if err := checkFile(f); err != nil {
		return fmt.Errorf("host %s: %w", c.cfg.Host, err)
	}
	sudo := f.Sudo && !c.root
	sc, err := c.sftpClient()
	if err != nil {
		return c.wrapUpload(f, c.uploadExec(ctx, f, sudo))
	}
	if sudo {
		return c.wrapUpload(f, c.uploadSudo(ctx, sc, f))
	}
	err = c.uploadSFTP(ctx, sc, f)
	c.sftpFailed(sc, err)
	return c.wrapUpload(f, err)
}

func (c *sshConn) wrapUpload(f File, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("host %s: upload %s: %w", c.cfg.Host, f.Path, err)
}

func checkFile(f File) error {
	if f.Path == "" || strings.HasSuffix(f.Path, "/") {
		return fmt.Errorf("upload: bad destination path %q", f.Path)
	}
	return nil
}

// tempPrefix starts the name of every temp file written beside dest:
// DIR/.BASE.troupe-tmp-, then random hex. An upload that dies half-way (a
// second Ctrl-C exits at once) leaves one behind; the next upload to dest
// removes them, since the host lock keeps any other run from writing there.
func tempPrefix(dest string) string {
	dir, base := path.Split(dest)
	return dir + "." + base + ".troupe-tmp-"
}

func tempName(dest string) string { return tempPrefix(dest) + randomHex() }

// staleLine is the shell that removes dest's leftover temp files.
func staleLine(dest string) string { return "rm -f -- " + Quote(tempPrefix(dest)) + "*" }

// removeStale removes dest's leftover temp files over sftp, all but keep
// (the upload's own); failing to is not an error (the upload itself will
// say what is wrong with the directory).
func removeStale(sc *sftp.Client, dest, keep string) {
	prefix := tempPrefix(dest)
	dir, base := path.Split(prefix)
	entries, err := sc.ReadDir(path.Clean(dir + "."))
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base) && e.Mode().IsRegular() && dir+e.Name() != keep {
			_ = sc.Remove(dir + e.Name())
		}
	}
}

// ctxReader ends a transfer as soon as ctx is cancelled, so the first
// Ctrl-C stops a big upload and its temp file is removed.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *sshConn) uploadSFTP(ctx context.Context, sc *sftp.Client, f File) (err error) {
	uid, gid := -1, -1
	if f.Owner != "" {
		if uid, err = c.lookupID(ctx, "u", f.Owner); err != nil {
			return err
		}
	}
	if f.Group != "" {
		if gid, err = c.lookupID(ctx, "g", f.Group); err != nil {
			return err
		}
	}
	tmp := tempName(f.Path)
	// The directory is listed for leftovers while the content goes out:
	// its requests (opendir, readdir …, close) overlap the upload's
	// instead of coming first, one round trip after another.
	stale := make(chan struct{})
	go func() { defer close(stale); removeStale(sc, f.Path, tmp) }()
	defer func() { <-stale }()
	fh, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("sftp create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = sc.Remove(tmp)
		}
	}()
	if _, err = fh.ReadFrom(ctxReader{ctx, bytes.NewReader(f.Content)}); err != nil {
		fh.Close()
		return fmt.Errorf("sftp write %s: %w", tmp, err)
	}
	if uid >= 0 || gid >= 0 { // before chmod: chown clears setuid/setgid bits
		if uid < 0 || gid < 0 {
			st, serr := fh.Stat()
			if serr != nil {
				fh.Close()
				return fmt.Errorf("sftp stat %s: %w", tmp, serr)
			}
			if fs, ok := st.Sys().(*sftp.FileStat); ok {
				if uid < 0 {
					uid = int(fs.UID)
				}
				if gid < 0 {
					gid = int(fs.GID)
				}
			}
		}
		if err = fh.Chown(uid, gid); err != nil {
			fh.Close()
			return fmt.Errorf("sftp chown %s to %s:%s: %w", tmp, f.Owner, f.Group, err)
		}
	}
	if err = fh.Chmod(fileMode(f)); err != nil {
		fh.Close()
		return fmt.Errorf("sftp chmod %s: %w", tmp, err)
	}
	if err = fh.Close(); err != nil {
		return fmt.Errorf("sftp close %s: %w", tmp, err)
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		if err = sc.PosixRename(tmp, f.Path); err != nil {
			return fmt.Errorf("sftp rename %s: %w", tmp, err)
		}
		return nil
	}
	// Plain SFTP rename refuses to overwrite on OpenSSH: rename(2) via exec.
	res, err := c.Run(ctx, Cmd{Command: "mv -f -- " + Quote(tmp) + " " + Quote(f.Path)})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("mv: exit %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	return err
}

// uploadSudo stages the content in a private directory of the login user and
// moves it into place as root.
func (c *sshConn) uploadSudo(ctx context.Context, sc *sftp.Client, f File) (err error) {
	home, err := sc.Getwd()
	if err != nil {
		c.sftpFailed(sc, err)
		return fmt.Errorf("sftp getwd: %w", err)
	}
	base := path.Join(home, ".cache", "troupe")
	if err = sc.MkdirAll(base); err != nil {
		return fmt.Errorf("sftp mkdir %s: %w", base, err)
	}
	dir := path.Join(base, "stage-"+randomHex())
	if err = sc.Mkdir(dir); err != nil {
		return fmt.Errorf("sftp mkdir %s: %w", dir, err)
	}
	defer func() {
		_ = sc.RemoveAll(dir)
	}()
	if err = sc.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("sftp chmod %s: %w", dir, err)
	}
	staged := path.Join(dir, "content")
	fh, err := sc.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("sftp create %s: %w", staged, err)
	}
	if _, err = fh.ReadFrom(ctxReader{ctx, bytes.NewReader(f.Content)}); err != nil {
		fh.Close()
		return fmt.Errorf("sftp write %s: %w", staged, err)
	}
	if err = fh.Close(); err != nil {
		return fmt.Errorf("sftp close %s: %w", staged, err)
	}
	tmp := tempName(f.Path)
	install := staleLine(f.Path) + "; install -m " + octalMode(fileMode(f))
	if f.Owner != "" {
		install += " -o " + Quote(f.Owner)
	}
	if f.Group != "" {
		install += " -g " + Quote(f.Group)
	}
	script := install + " -- " + Quote(staged) + " " + Quote(tmp) +
		" && mv -f -- " + Quote(tmp) + " " + Quote(f.Path) +
		" || { rc=$?; rm -f -- " + Quote(tmp) + "; exit $rc; }"
	return c.runOK(ctx, Cmd{Command: script, Sudo: true})
}

// uploadExec is the fallback without sftp: the content goes over stdin.
func (c *sshConn) uploadExec(ctx context.Context, f File, sudo bool) error {
	tmp := tempName(f.Path)
	q := Quote(tmp)
	script := staleLine(f.Path) + "; umask 077 && cat > " + q
	switch {
	case f.Owner != "" && f.Group != "":
		script += " && chown -- " + Quote(f.Owner+":"+f.Group) + " " + q
	case f.Owner != "":
		script += " && chown -- " + Quote(f.Owner) + " " + q
	case f.Group != "":
		script += " && chgrp -- " + Quote(f.Group) + " " + q
	}
	script += " && chmod " + octalMode(fileMode(f)) + " " + q +
		" && mv -f -- " + q + " " + Quote(f.Path) +
		" || { rc=$?; rm -f -- " + q + "; exit $rc; }"
	return c.runOK(ctx, Cmd{Command: script, Sudo: sudo, Stdin: bytes.NewReader(f.Content)})
}

// runOK runs cmd and turns a non-zero exit into an error carrying stderr.
func (c *sshConn) runOK(ctx context.Context, cmd Cmd) error {
	res, err := c.Run(ctx, cmd)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("exit status %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	return nil
}

// lookupID resolves a user ("u") or group ("g") name to its numeric id on
// the host, once per connection. Numeric names are taken as ids.
func (c *sshConn) lookupID(ctx context.Context, kind, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	key := kind + ":" + name
	c.idMu.Lock()
	id, ok := c.ids[key]
	c.idMu.Unlock()
	if ok {
		return id, nil
	}
	command := "id -u -- " + Quote(name)
	what := "user"
	if kind == "g" {
		command = "getent group " + Quote(name) + " | cut -d: -f3"
		what = "group"
	}
	res, err := c.Run(ctx, Cmd{Command: command})
	if err != nil {
		return -1, err
	}
	id, perr := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if res.ExitCode != 0 || perr != nil {
		return -1, fmt.Errorf("no such %s %q on the host", what, name)
	}
	c.idMu.Lock()
	c.ids[key] = id
	c.idMu.Unlock()
	return id, nil
}

// Download reads path (see Conn.Download): sftp, or `cat` over exec with
// sudo (or without the sftp subsystem). A missing file wraps fs.ErrNotExist.
func (c *sshConn) Download(ctx context.Context, p string, sudo bool) ([]byte, error) {
	sudo = sudo && !c.root
	var sc *sftp.Client
	var err error
	if !sudo {
		sc, err = c.sftpClient()
	}
	if sudo || err != nil {
		return downloadExec(ctx, c, c.cfg.Host, p, sudo)
	}
	fh, err := sc.Open(p)
	if err != nil {
		c.sftpFailed(sc, err)
		return nil, fmt.Errorf("host %s: download %s: %w", c.cfg.Host, p, err)
	}
	defer fh.Close()
	var buf bytes.Buffer
	if _, err := fh.WriteTo(&buf); err != nil {
		c.sftpFailed(sc, err)
		return nil, fmt.Errorf("host %s: download %s: %w", c.cfg.Host, p, err)
	}
	return buf.Bytes(), nil
}

func downloadExec(ctx context.Context, c Conn, host, p string, sudo bool) ([]byte, error) {
	res, err := c.Run(ctx, Cmd{Command: catLine(p), Sudo: sudo})
	if err != nil {
		return nil, err
	}
	if isNotExistResult(res) {
		return nil, fmt.Errorf("host %s: download %s: %w", host, p, fs.ErrNotExist)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("host %s: download %s: exit status %d: %s", host, p, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	return []byte(res.Stdout), nil
}
