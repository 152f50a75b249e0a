package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Local returns a Conn that runs on this machine with the same semantics as
// the SSH one: `sh -c`, `sudo -n` for sudo commands unless already root,
// atomic uploads (temp file + rename), fs.ErrNotExist for missing downloads.
// Cancelling a Run sends SIGTERM to the command's process group, SIGKILL
// after a grace period.
func Local() Conn { return localConn{root: os.Geteuid() == 0} }

type localConn struct{ root bool }

func (localConn) Close() error { return nil }

func (l localConn) Run(ctx context.Context, c Cmd) (Result, error) {
	c = hide(c)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	argv := []string{"sh", "-c", c.Command}
	if c.Sudo && !l.root {
		argv = []string{"sudo", "-n", "--", "sh", "-c", c.Command}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, errOut := lockedBuffer{max: c.MaxOutput}, lockedBuffer{max: c.MaxOutput}
	cmd.Stdin = c.Stdin
	cmd.Stdout = tee{&out, c.Stdout}
	cmd.Stderr = tee{&errOut, c.Stderr}
	// Do not let a grandchild holding the pipes open block Wait forever.
	cmd.WaitDelay = cancelGrace
	result := func() Result {
		return Result{Stdout: out.String(), Stderr: errOut.String(), Truncated: out.cut() || errOut.cut()}
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("local: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(cancelGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		return result(), ctx.Err()
	}
	res := result()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
		}
	case errors.Is(err, exec.ErrWaitDelay):
		res.ExitCode = cmd.ProcessState.ExitCode()
	default:
		return res, fmt.Errorf("local: %w", err)
	}
	return res, nil
}

func (l localConn) Upload(ctx context.Context, f File) error {
	if err := checkFile(f); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	if f.Sudo && !l.root {
		return l.uploadSudo(ctx, f)
	}
	if err := writeAtomic(f); err != nil {
		return fmt.Errorf("local: upload %s: %w", f.Path, err)
	}
	return nil
}

func writeAtomic(f File) (err error) {
	uid, gid := -1, -1
	if f.Owner != "" {
		if uid, err = localID(f.Owner, false); err != nil {
			return err
		}
	}
	if f.Group != "" {
		if gid, err = localID(f.Group, true); err != nil {
			return err
		}
	}
	dir, base := filepath.Split(f.Path)
	if dir == "" {
		dir = "."
	}
	stale, _ := filepath.Glob(globEscape(filepath.Join(dir, "."+base+".troupe-tmp-")) + "*")
	for _, s := range stale {
		os.Remove(s) // an upload that died half-way (see tempPrefix)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".troupe-tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(f.Content); err != nil {
		return err
	}
	if uid >= 0 || gid >= 0 { // before chmod: chown clears setuid/setgid bits
		if err = tmp.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = tmp.Chmod(fileMode(f)); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}

func localID(name string, group bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	var id string
	if group {
		g, err := user.LookupGroup(name)
		if err != nil {
			return -1, err
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return -1, err
		}
		id = u.Uid
	}
	return strconv.Atoi(id)
}

func (l localConn) uploadSudo(ctx context.Context, f File) error {
	dir, err := os.MkdirTemp("", "troupe-stage-*") // 0700
	if err != nil {
		return fmt.Errorf("local: upload %s: %w", f.Path, err)
	}
	defer os.RemoveAll(dir)
	staged := filepath.Join(dir, "content")
	if err := os.WriteFile(staged, f.Content, 0o600); err != nil {
		return fmt.Errorf("local: upload %s: %w", f.Path, err)
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
	res, err := l.Run(ctx, Cmd{Command: script, Sudo: true})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if err != nil {
		return fmt.Errorf("local: upload %s: %w", f.Path, err)
	}
	return nil
}

func (l localConn) Download(ctx context.Context, p string, sudo bool) ([]byte, error) {
	if sudo && !l.root {
		return downloadExec(ctx, l, "localhost", p, true)
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("local: download: %w", err)
	}
	defer fh.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, fh); err != nil {
		return nil, fmt.Errorf("local: download %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

// globEscape quotes the pattern characters of a file name for filepath.Glob.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
