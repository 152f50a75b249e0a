// Package step holds the action kinds a plan step can use: one file per kind,
// registered in one table (registry.go). An action does its job on one host
// through an *Exec and mutates only through Exec.Change and Exec.WriteFile,
// so --noop, output streaming and redaction need nothing from the action.
package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/transport"
)

// Action is a decoded action body, run once per host.
type Action interface {
	Run(ctx context.Context, x *Exec) (Result, error)
}

// Titler is an optional interface: a readable default title for the report.
type Titler interface{ Title() string }

// ReadOnly is an optional interface for actions that never change a host
// (waits, messages, assertions): they run for real under --noop.
type ReadOnly interface{ ReadOnly() bool }

// IsReadOnly says whether an action never changes a host; an action whose
// mode decides it (puppet_cert's check) answers for its own settings.
func IsReadOnly(a any) bool {
	ro, ok := a.(ReadOnly)
	return ok && ro.ReadOnly()
}

// Result is the outcome of an action on one host. A returned error means
// failed; otherwise Skip != "" means skipped, Changed means changed, else ok.
type Result struct {
	Changed  bool
	Skip     string
	Stdout   string
	Stderr   string
	ExitCode int
	Msg      string // a short summary for the report
	Data     any    // structured data for `register` (e.g. parsed JSON)
}

// Exec is what an action sees of one host: its connection, the template
// scope, and the one path for every mutation.
type Exec struct {
	Host *inventory.Host
	Conn transport.Conn
	Sudo bool
	Noop bool
	// Unapplied: the run is --noop and showed this host changes it did
	// not make, so a read-only action (which runs for real) may find what
	// they would change: a program not installed yet, a service not
	// started. It says so instead of failing or waiting.
	Unapplied bool
	Data      map[string]any // template scope: .params .vars .host .groups .registered .flavor
	// Typed facts, set by the runner from the inventory: actions read these,
	// never Data, for what they need to know themselves.
	Flavor *puppet.Flavor      // the host's vars.flavor; nil when it names none
	Groups map[string][]string // every inventory group's host names
	Files  fs.FS               // plans' content: templates/ and files/ (embedded, overridable on disk)
	Emit   func(report.Event)  // the runner fills in step and host
	// Peer is the Exec of another inventory host, for an action that named
	// it in Peers (PeerUser): over the connection the runner opened, checked
	// and locked before the first step, with the step's sudo.
	Peer func(ctx context.Context, host string) (*Exec, error)
	// Secrets: a command holding one is sent to the host on stdin rather
	// than in argv (transport.Cmd.Hidden).
	Secrets *secret.Redactor
	// Memo is what the run has learned of its hosts that does not change
	// while it runs (a CA's cadir), shared by every Exec of one run and
	// gone with it; nil: nothing is remembered.
	Memo *Memo
}

// Memo is a run's memory of facts read from hosts, keyed by what they are.
type Memo struct{ m sync.Map }

// Get is the value stored under key, if any (a nil Memo holds nothing).
func (m *Memo) Get(key string) (string, bool) {
	if m == nil {
		return "", false
	}
	v, ok := m.m.Load(key)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// Put stores value under key (a nil Memo forgets it).
func (m *Memo) Put(key, value string) {
	if m != nil {
		m.m.Store(key, value)
	}
}

// Render renders a template string against the host's scope.
func (x *Exec) Render(s string) (string, error) { return render.String(s, x.Data) }

// RenderAll renders each string of a list.
func (x *Exec) RenderAll(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		r, err := x.Render(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Duration renders a duration field ("5m", or a template giving one); an
// empty field is def.
func (x *Exec) Duration(field string, def time.Duration) (time.Duration, error) {
	s, err := x.Render(field)
	if err != nil || s == "" {
		return def, err
	}
	return time.ParseDuration(strings.TrimSpace(s))
}

// checkDuration checks a duration field at load time; a template is
// checked when it is rendered.
func checkDuration(s string) error {
	if s == "" || strings.Contains(s, "{{") {
		return nil
	}
	_, err := time.ParseDuration(s)
	return err
}

// Probe runs a read-only command; it runs under --noop too.
func (x *Exec) Probe(ctx context.Context, cmd string) (transport.Result, error) {
	return x.Conn.Run(ctx, transport.Cmd{Command: cmd, Sudo: x.Sudo, Hidden: x.Secrets.Contains(cmd)})
}

// Change runs a command that changes the host, streaming its output. Under
// --noop it only reports what would run and returns an empty result.
func (x *Exec) Change(ctx context.Context, cmd string, stdin string) (transport.Result, error) {
	if x.Noop {
		x.Emit(report.Event{Kind: report.WouldRun, Text: cmd})
		return transport.Result{}, nil
	}
	c := transport.Cmd{Command: cmd, Sudo: x.Sudo, Hidden: x.Secrets.Contains(cmd), Stdout: x.lines("stdout"), Stderr: x.lines("stderr")}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	res, err := x.Conn.Run(ctx, c)
	flush(c.Stdout, c.Stderr)
	return res, err
}

// MustChange is Change that turns a non-zero exit into an error carrying the
// remote stderr.
func (x *Exec) MustChange(ctx context.Context, cmd, stdin string) (transport.Result, error) {
	res, err := x.Change(ctx, cmd, stdin)
	if err != nil {
		return res, err
	}
	if res.ExitCode != 0 {
		return res, &ExitError{Cmd: cmd, Result: res}
	}
	return res, nil
}

// MustProbe is Probe that turns a non-zero exit into an error.
func (x *Exec) MustProbe(ctx context.Context, cmd string) (transport.Result, error) {
	res, err := x.Probe(ctx, cmd)
	if err != nil {
		return res, err
	}
	if res.ExitCode != 0 {
		return res, &ExitError{Cmd: cmd, Result: res}
	}
	return res, nil
}

// WriteFile writes f when the remote content, mode or owner differ, and
// reports whether it did (or, under --noop, would, with a diff).
func (x *Exec) WriteFile(ctx context.Context, f transport.File) (bool, error) {
	f.Sudo = x.Sudo
	if f.Mode == 0 {
		f.Mode = 0o644
	}
	old, err := x.Conn.Download(ctx, f.Path, x.Sudo)
	exists := err == nil
	if err != nil && !isNotExist(err) {
		return false, fmt.Errorf("read %s: %w", f.Path, err)
	}
	same := exists && string(old) == string(f.Content)
	if same {
		ok, err := x.attrsMatch(ctx, f)
		if err != nil {
			return false, err
		}
		if ok {
			return false, nil
		}
	}
	if x.Noop {
		x.Emit(report.Event{Kind: report.WouldWrite, Text: f.Path, Diff: render.Diff(f.Path, string(old), string(f.Content))})
		return true, nil
	}
	if err := x.Conn.Upload(ctx, f); err != nil {
		return false, fmt.Errorf("write %s: %w", f.Path, err)
	}
	return true, nil
}

// attrsMatch compares the remote file's mode and owner with f's.
func (x *Exec) attrsMatch(ctx context.Context, f transport.File) (bool, error) {
	if f.Owner == "" && f.Group == "" {
		if a, exists, ok := x.lstat(f.Path); ok {
			return exists && a.Perm == uint32(f.Mode.Perm()), nil
		}
	}
	res, err := x.MustProbe(ctx, "stat -c '%a %U %G' "+render.ShellQuote(f.Path))
	if err != nil {
		return false, err
	}
	var mode, owner, group string
	fmt.Sscan(res.Stdout, &mode, &owner, &group)
	if mode != fmt.Sprintf("%o", f.Mode.Perm()) {
		return false, nil
	}
	if f.Owner != "" && f.Owner != owner {
		return false, nil
	}
	if f.Group != "" && f.Group != group {
		return false, nil
	}
	return true, nil
}

// lstat describes p over the connection's SFTP channel, which costs the host
// no session, unlike a `stat` probe. ok is false when it cannot: no SFTP, a
// sudo step on a non-root login (SFTP runs as the login user), an error
// other than a missing p (a directory the login user may not search …).
func (x *Exec) lstat(p string) (a transport.Attrs, exists, ok bool) {
	fo, isOpener := x.Conn.(transport.FileOpener)
	if !isOpener {
		return a, false, false
	}
	ops, err := fo.FileOps(x.Sudo)
	if err != nil {
		return a, false, false
	}
	a, err = ops.Lstat(p)
	if isNotExist(err) {
		return a, false, true
	}
	return a, err == nil, err == nil
}

func isNotExist(err error) bool { return err != nil && errors.Is(err, fs.ErrNotExist) }

// ExitError is a command that exited non-zero where success was required.
type ExitError struct {
	Cmd    string
	Result transport.Result
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Result.Stderr)
	if msg == "" {
		msg = strings.TrimSpace(e.Result.Stdout)
	}
	if i := strings.LastIndex(msg, "\n"); i >= 0 && len(msg) > 400 {
		msg = "…" + msg[len(msg)-400:]
	}
	return fmt.Sprintf("exit status %d: %s", e.Result.ExitCode, msg)
}
