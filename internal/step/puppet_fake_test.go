package step

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

// fakeConn is a host for the step kinds' tests: transporttest's recording
// fake (a command no rule answers fails the test), files in its map, and
// shorthands for the rules the tests write most: a substring → answer.
type fakeConn struct{ *transporttest.Conn }

func newFake(t testing.TB) *fakeConn {
	f := &fakeConn{transporttest.New(t)}
	// Exec.WriteFile's attribute probe, answered from the files (owner and
	// group root unless set, mode 0644 unless set).
	f.On(transporttest.HasPrefix(statAttrs), func(c transporttest.Command) transport.Result {
		p := unquote(strings.TrimPrefix(c.Command, statAttrs))
		file, ok := f.File(p)
		if !ok {
			return transport.Result{ExitCode: 1, Stderr: "stat: cannot statx '" + p + "': No such file or directory\n"}
		}
		mode, owner, group := file.Mode.Perm(), file.Owner, file.Group
		if mode == 0 {
			mode = 0o644
		}
		if owner == "" {
			owner = "root"
		}
		if group == "" {
			group = "root"
		}
		return transport.Result{Stdout: fmt.Sprintf("%o %s %s\n", mode, owner, group)}
	})
	return f
}

const statAttrs = "stat -c '%a %U %G' "

// unquote undoes render.ShellQuote.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return s
	}
	return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'")
}

// on answers the commands containing match with fn's result.
func (f *fakeConn) on(match string, fn func(cmd string) transport.Result) {
	f.On(transporttest.Contains(match), func(c transporttest.Command) transport.Result { return fn(c.Command) })
}

// reply answers the commands containing match with stdout.
func (f *fakeConn) reply(match, stdout string) { f.Reply(transporttest.Contains(match), stdout) }

func (f *fakeConn) set(path string, b []byte) { f.WriteFile(path, b) }

func (f *fakeConn) remove(path string) { f.RemoveFile(path) }

// file is the content of path on the host, nil when there is none.
func (f *fakeConn) file(path string) []byte {
	file, _ := f.File(path)
	return file.Content
}

// ran lists every command received, in order.
func (f *fakeConn) ran() []string { return f.ranMatching("") }

// ranMatching lists the commands received that contain s.
func (f *fakeConn) ranMatching(s string) []string {
	var out []string
	for _, c := range f.Commands(transporttest.Contains(s)) {
		out = append(out, c.Command)
	}
	return out
}

// fakeSite wires hosts (name → fake) into Execs that can reach each other.
type fakeSite struct {
	hosts  map[string]*fakeConn
	groups map[string][]string
	noop   bool
	events []report.Event
	mu     sync.Mutex
}

func (s *fakeSite) exec(t *testing.T, name string) *Exec {
	t.Helper()
	flavor, err := puppet.Lookup("debian")
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := strings.Cut(name, ".")
	x := &Exec{
		Host:   &inventory.Host{Name: name},
		Conn:   s.hosts[name],
		Noop:   s.noop,
		Flavor: flavor,
		Groups: s.groups,
		Data: map[string]any{
			"flavor": flavor.Data(),
			"host":   map[string]any{"name": name, "short": short},
			"vars":   map[string]any{},
		},
		Emit: func(e report.Event) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.events = append(s.events, e)
		},
	}
	x.Peer = func(_ context.Context, peer string) (*Exec, error) { return s.exec(t, peer), nil }
	return x
}
