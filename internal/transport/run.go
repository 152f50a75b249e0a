package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Run runs c.Command through `sh -c` (see Conn.Run). With c.Sudo and a
// non-root login the command runs under `sudo -n`, or `sudo -S` with
// Config.SudoPassword fed on stdin. A cancelled ctx sends SIGTERM, which the
// remote wrapper passes on to the command's whole process group; after
// cancelGrace the session is closed. Stdout and Stderr are written from
// different goroutines.
func (c *sshConn) Run(ctx context.Context, cmd Cmd) (Result, error) {
	cmd = hide(cmd)
	sudo := cmd.Sudo && !c.root
	withPW := sudo && c.cfg.SudoPassword != ""
	stdin := cmd.Stdin
	if withPW {
		readers := []io.Reader{strings.NewReader(c.cfg.SudoPassword + "\n")}
		if cmd.Stdin != nil {
			readers = append(readers, cmd.Stdin)
		}
		stdin = io.MultiReader(readers...)
	}
	var pidfile string
	var kill func() <-chan struct{}
	if c.root {
		pidfile = newPidfile()
		// sshd ignores "signal" requests on root logins (no privilege
		// separation there): signal the wrapper from a second session.
		kill = func() <-chan struct{} { return c.killRemote(pidfile) }
	}
	return c.exec(ctx, shellLine(cmd.Command, pidfile, sudo, withPW), stdin, cmd.Stdout, cmd.Stderr, cmd.MaxOutput, kill)
}

// exec runs line in a new session, keeping at most maxOutput bytes (when
// more than 0) of each stream. On ctx cancel it sends SIGTERM, calls kill
// (when not nil) if the command is still running shortly after, waits up to
// cancelGrace for it to end, then closes the session and returns ctx.Err().
func (c *sshConn) exec(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer, maxOutput int, kill func() <-chan struct{}) (Result, error) {
	sess, release, err := c.session(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	defer sess.Close()

	out, errOut := lockedBuffer{max: maxOutput}, lockedBuffer{max: maxOutput}
	sess.Stdin = stdin
	sess.Stdout = tee{&out, stdout}
	sess.Stderr = tee{&errOut, stderr}
	result := func() Result {
		return Result{Stdout: out.String(), Stderr: errOut.String(), Truncated: out.cut() || errOut.cut()}
	}
	if err := sess.Start(line); err != nil {
		return Result{}, c.connErr(fmt.Errorf("starting command: %w", err))
	}
	done := make(chan error, 1) // buffered: the waiter never blocks after we leave
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM) // OpenSSH >= 7.9 delivers it to the command
		var killed <-chan struct{}
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
			if kill != nil {
				killed = kill()
			}
			select {
			case <-done:
			case <-time.After(cancelGrace):
			}
		}
		_ = sess.Close()
		if killed != nil {
			select {
			case <-killed:
			case <-time.After(time.Second):
			}
		}
		return result(), ctx.Err()
	}
	res := result()
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		if res.ExitCode == 0 && ee.Signal() != "" {
			res.ExitCode = 128 + signalNumber(ssh.Signal(ee.Signal()))
		}
	case errors.As(err, &missing):
		return res, c.connErr(errors.New("command ended without an exit status (connection lost?)"))
	default:
		return res, c.connErr(err)
	}
	return res, nil
}

// session opens a session under the per-connection semaphore.
func (c *sshConn) session(ctx context.Context) (*ssh.Session, func(), error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-c.closed:
		return nil, nil, c.connErr(errors.New("connection closed"))
	}
	release := func() { <-c.sem }
	s, err := c.newSession(ctx)
	if err != nil {
		release()
		return nil, nil, err
	}
	return s, release, nil
}

// newSession opens a session, retrying a few times when the server refuses
// the channel (e.g. a MaxSessions below ours).
func (c *sshConn) newSession(ctx context.Context) (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.client.NewSession()
		if err == nil {
			return s, nil
		}
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || attempt == 5 {
			return nil, c.connErr(fmt.Errorf("new session: %w", err))
		}
		select {
		case <-time.After(50 * time.Millisecond << attempt):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// killRemote queues pidfile for the connection's killer, which signals all
// queued wrappers with one session outside the semaphore (the cancelled
// commands hold its slots). The returned channel closes once it was sent.
func (c *sshConn) killRemote(pidfile string) <-chan struct{} {
	done := make(chan struct{})
	c.killMu.Lock()
	c.killQueue = append(c.killQueue, killWait{pidfile, done})
	if !c.killing {
		c.killing = true
		go c.killer()
	}
	c.killMu.Unlock()
	return done
}

type killWait struct {
	pidfile string
	done    chan struct{}
}

func (c *sshConn) killer() {
	for {
		c.killMu.Lock()
		batch := c.killQueue
		c.killQueue = nil
		if len(batch) == 0 {
			c.killing = false
			c.killMu.Unlock()
			return
		}
		c.killMu.Unlock()
		files := make([]string, len(batch))
		for i, k := range batch {
			files[i] = k.pidfile
		}
		ctx, cancel := context.WithTimeout(context.Background(), cancelGrace+time.Second)
		if s, err := c.newSession(ctx); err == nil {
			_ = s.Run("sh -c " + Quote(killLine(files)))
			s.Close()
		}
		cancel()
		for _, k := range batch {
			close(k.done)
		}
	}
}

func signalNumber(s ssh.Signal) int {
	n := map[ssh.Signal]int{ssh.SIGHUP: 1, ssh.SIGINT: 2, ssh.SIGQUIT: 3, ssh.SIGILL: 4, ssh.SIGABRT: 6,
		ssh.SIGFPE: 8, ssh.SIGKILL: 9, ssh.SIGUSR1: 10, ssh.SIGSEGV: 11, ssh.SIGUSR2: 12, ssh.SIGPIPE: 13,
		ssh.SIGALRM: 14, ssh.SIGTERM: 15}[s]
	if n == 0 {
		return 127 // unknown signal: 255
	}
	return n
}

// lockedBuffer is written by the session's copy goroutines and may be read
// after a cancelled Run returned while they still run.
// With max > 0 it keeps the first max bytes and drops (but accepts) the
// rest.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	max     int
	dropped bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.b.Len()+len(p) > l.max {
		l.dropped = true
		l.b.Write(p[:l.max-l.b.Len()])
		return len(p), nil
	}
	return l.b.Write(p)
}

// cut reports whether output was dropped.
func (l *lockedBuffer) cut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tee captures into buf and streams to w; a failing w does not stop the capture.
type tee struct {
	buf io.Writer
	w   io.Writer
}

func (t tee) Write(p []byte) (int, error) {
	n, err := t.buf.Write(p)
	if t.w != nil {
		_, _ = t.w.Write(p)
	}
	return n, err
}
