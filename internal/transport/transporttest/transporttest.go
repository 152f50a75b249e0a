// Package transporttest is a recording fake of transport.Conn, for unit
// tests of code that drives a host through a Conn (the step kinds).
//
// It is a fake, not a host: nothing runs. A unit test of an action needs
// to know what the action sends and to script what the host answers, not a
// real machine; the real transports are tested against a real OpenSSH sshd
// elsewhere (internal/transport, internal/sshtest).
//
// Every Run, Upload and Download is recorded in order. A command is
// answered by the last added rule whose matcher accepts it; a command no
// rule matches fails the test (t.Errorf) and exits 127, so a test never
// passes on a command it did not expect. Uploads land in a small file map
// that Download reads (a missing path is fs.ErrNotExist).
package transporttest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/transport"
)

// Matcher says whether a command line (or a path) is the one meant.
type Matcher struct {
	desc string
	fn   func(string) bool
}

// Match reports whether m accepts s.
func (m Matcher) Match(s string) bool { return m.fn(s) }

func (m Matcher) String() string { return m.desc }

// Equal matches s exactly.
func Equal(s string) Matcher {
	return Matcher{fmt.Sprintf("equal to %q", s), func(c string) bool { return c == s }}
}

// HasPrefix matches what begins with s.
func HasPrefix(s string) Matcher {
	return Matcher{fmt.Sprintf("beginning %q", s), func(c string) bool { return strings.HasPrefix(c, s) }}
}

// Contains matches what holds s.
func Contains(s string) Matcher {
	return Matcher{fmt.Sprintf("containing %q", s), func(c string) bool { return strings.Contains(c, s) }}
}

// Regexp matches what the regular expression re finds in (it panics on a
// bad expression, as a test's own mistake).
func Regexp(re string) Matcher {
	r := regexp.MustCompile(re)
	return Matcher{fmt.Sprintf("matching /%s/", re), r.MatchString}
}

// Any matches everything: a catch-all rule, added first, that later rules
// override.
func Any() Matcher { return Matcher{"any", func(string) bool { return true }} }

// Command is one Run as the fake received it.
type Command struct {
	Command string
	Sudo    bool
	Hidden  bool
	Stdin   string // all of Cmd.Stdin, read
}

// Download is one Download as the fake received it.
type Download struct {
	Path string
	Sudo bool
}

// Call is one entry of the log: exactly one of its fields is set.
type Call struct {
	Run      *Command
	Upload   *transport.File
	Download *Download
}

// Handler answers a command; a non-nil error is a transport fault.
type Handler func(Command) (transport.Result, error)

type rule struct {
	m  Matcher
	fn Handler
}

type pathRule struct {
	m   Matcher
	err error
}

// Conn is the fake connection. Its methods are safe for concurrent use; a
// Handler runs without the Conn's lock held, so it may call the Conn.
type Conn struct {
	t            testing.TB
	mu           sync.Mutex
	rules        []rule
	uploadErrs   []pathRule
	downloadErrs []pathRule
	files        map[string]transport.File
	log          []Call
	closed       bool
}

var _ transport.Conn = (*Conn)(nil)

// New is a fake connection that reports unexpected commands to t.
func New(t testing.TB) *Conn {
	return &Conn{t: t, files: map[string]transport.File{}}
}

// Handle answers commands m matches with fn. The last rule added that
// matches answers, so a test overrides a helper's rule by adding its own.
func (c *Conn) Handle(m Matcher, fn Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rules = append(c.rules, rule{m, fn})
}

// On answers commands m matches with fn's result.
func (c *Conn) On(m Matcher, fn func(Command) transport.Result) {
	c.Handle(m, func(cmd Command) (transport.Result, error) { return fn(cmd), nil })
}

// Reply answers commands m matches with stdout and exit 0.
func (c *Conn) Reply(m Matcher, stdout string) {
	c.Respond(m, transport.Result{Stdout: stdout})
}

// Respond answers commands m matches with res.
func (c *Conn) Respond(m Matcher, res transport.Result) {
	c.Handle(m, func(Command) (transport.Result, error) { return res, nil })
}

// Fail answers commands m matches with exit code and stderr.
func (c *Conn) Fail(m Matcher, code int, stderr string) {
	c.Respond(m, transport.Result{ExitCode: code, Stderr: stderr})
}

// FailUpload makes uploads to paths m matches return err.
func (c *Conn) FailUpload(m Matcher, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploadErrs = append(c.uploadErrs, pathRule{m, err})
}

// FailDownload makes downloads of paths m matches return err.
func (c *Conn) FailDownload(m Matcher, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.downloadErrs = append(c.downloadErrs, pathRule{m, err})
}

// Run records the command and answers it by the rules. An unmatched command
// fails the test and exits 127. The answer's stdout and stderr are written
// to Cmd.Stdout and Cmd.Stderr and cut at Cmd.MaxOutput as the real
// transports do; a cancelled ctx returns ctx.Err().
func (c *Conn) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	rec := Command{Command: cmd.Command, Sudo: cmd.Sudo, Hidden: cmd.Hidden}
	if cmd.Stdin != nil {
		b, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return transport.Result{}, err
		}
		rec.Stdin = string(b)
	}
	c.mu.Lock()
	c.log = append(c.log, Call{Run: &rec})
	var fn Handler
	for i := len(c.rules) - 1; i >= 0; i-- {
		if c.rules[i].m.Match(cmd.Command) {
			fn = c.rules[i].fn
			break
		}
	}
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return transport.Result{}, err
	}
	if fn == nil {
		c.t.Helper()
		c.t.Errorf("transporttest: unexpected command (no rule matches): %q", cmd.Command)
		return transport.Result{ExitCode: 127, Stderr: "transporttest: unexpected command\n"}, nil
	}
	res, err := fn(rec)
	if err != nil {
		return res, err
	}
	if cmd.MaxOutput > 0 {
		if len(res.Stdout) > cmd.MaxOutput {
			res.Stdout, res.Truncated = res.Stdout[:cmd.MaxOutput], true
		}
		if len(res.Stderr) > cmd.MaxOutput {
			res.Stderr, res.Truncated = res.Stderr[:cmd.MaxOutput], true
		}
	}
	if cmd.Stdout != nil {
		io.WriteString(cmd.Stdout, res.Stdout)
	}
	if cmd.Stderr != nil {
		io.WriteString(cmd.Stderr, res.Stderr)
	}
	return res, nil
}

// Upload records f and stores it, unless a FailUpload rule matches its path.
func (c *Conn) Upload(ctx context.Context, f transport.File) error {
	f.Content = append([]byte(nil), f.Content...)
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := f
	c.log = append(c.log, Call{Upload: &rec})
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := len(c.uploadErrs) - 1; i >= 0; i-- {
		if c.uploadErrs[i].m.Match(f.Path) {
			return c.uploadErrs[i].err
		}
	}
	c.files[f.Path] = f
	return nil
}

// Download records the read and returns the stored file's content, an error
// matching fs.ErrNotExist when there is none, or a FailDownload rule's error.
func (c *Conn) Download(ctx context.Context, path string, sudo bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, Call{Download: &Download{Path: path, Sudo: sudo}})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := len(c.downloadErrs) - 1; i >= 0; i-- {
		if c.downloadErrs[i].m.Match(path) {
			return nil, c.downloadErrs[i].err
		}
	}
	f, ok := c.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "download", Path: path, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), f.Content...), nil
}

// Close marks the connection closed (see Closed).
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Closed says whether Close was called.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// SetFile puts a file on the fake host, as if it were there before the
// test (not recorded as an upload).
func (c *Conn) SetFile(f transport.File) {
	f.Content = append([]byte(nil), f.Content...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[f.Path] = f
}

// WriteFile is SetFile of path with content, mode 0 (0644) and no owner.
func (c *Conn) WriteFile(path string, content []byte) {
	c.SetFile(transport.File{Path: path, Content: content})
}

// RemoveFile takes path off the fake host.
func (c *Conn) RemoveFile(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.files, path)
}

// File is the file at path on the fake host, if any.
func (c *Conn) File(path string) (transport.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[path]
	f.Content = append([]byte(nil), f.Content...)
	return f, ok
}

// Log is every call so far, in order.
func (c *Conn) Log() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.log...)
}

// Commands are the commands received that m matches, in order.
func (c *Conn) Commands(m Matcher) []Command {
	var out []Command
	for _, call := range c.Log() {
		if call.Run != nil && m.Match(call.Run.Command) {
			out = append(out, *call.Run)
		}
	}
	return out
}

// Uploads are the uploads received to paths m matches, in order.
func (c *Conn) Uploads(m Matcher) []transport.File {
	var out []transport.File
	for _, call := range c.Log() {
		if call.Upload != nil && m.Match(call.Upload.Path) {
			out = append(out, *call.Upload)
		}
	}
	return out
}

// Downloads are the downloads received of paths m matches, in order.
func (c *Conn) Downloads(m Matcher) []Download {
	var out []Download
	for _, call := range c.Log() {
		if call.Download != nil && m.Match(call.Download.Path) {
			out = append(out, *call.Download)
		}
	}
	return out
}

// Received fails t unless a command m matches was received, and returns
// those that were.
func (c *Conn) Received(t testing.TB, m Matcher) []Command {
	t.Helper()
	got := c.Commands(m)
	if len(got) == 0 {
		t.Errorf("no command %s was received; received:\n%s", m, c.commandList())
	}
	return got
}

// ReceivedN fails t unless exactly n commands m matches were received.
func (c *Conn) ReceivedN(t testing.TB, m Matcher, n int) []Command {
	t.Helper()
	got := c.Commands(m)
	if len(got) != n {
		t.Errorf("%d commands %s received, want %d; received:\n%s", len(got), m, n, c.commandList())
	}
	return got
}

// NotReceived fails t if a command m matches was received.
func (c *Conn) NotReceived(t testing.TB, m Matcher) {
	t.Helper()
	if got := c.Commands(m); len(got) > 0 {
		t.Errorf("command %s received, want none: %q", m, got[0].Command)
	}
}

// InOrder fails t unless commands matching ms were received in that order:
// each one after the one the previous matcher found first.
func (c *Conn) InOrder(t testing.TB, ms ...Matcher) {
	t.Helper()
	var cmds []string
	for _, call := range c.Log() {
		if call.Run != nil {
			cmds = append(cmds, call.Run.Command)
		}
	}
	from := 0
	for _, m := range ms {
		i := from
		for i < len(cmds) && !m.Match(cmds[i]) {
			i++
		}
		if i == len(cmds) {
			t.Errorf("no command %s after command #%d; received:\n%s", m, from, c.commandList())
			return
		}
		from = i + 1
	}
}

// Uploaded fails t unless a file was uploaded to path, and returns the
// last one.
func (c *Conn) Uploaded(t testing.TB, path string) transport.File {
	t.Helper()
	got := c.Uploads(Equal(path))
	if len(got) == 0 {
		t.Errorf("nothing uploaded to %s", path)
		return transport.File{}
	}
	return got[len(got)-1]
}

// NotUploaded fails t if anything was uploaded to a path m matches.
func (c *Conn) NotUploaded(t testing.TB, m Matcher) {
	t.Helper()
	if got := c.Uploads(m); len(got) > 0 {
		t.Errorf("upload to a path %s, want none: %s", m, got[0].Path)
	}
}

// commandList is the received commands, one a line, numbered from 0.
func (c *Conn) commandList() string {
	var b strings.Builder
	n := 0
	for _, call := range c.Log() {
		if call.Run != nil {
			fmt.Fprintf(&b, "  #%d %q\n", n, call.Run.Command)
			n++
		}
	}
	if n == 0 {
		return "  (none)\n"
	}
	return b.String()
}
