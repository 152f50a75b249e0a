package step

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
)

// fakeConn is a host for the puppet-site kinds' tests: files in a map,
// commands answered by the first matching rule (substring → handler).
type fakeConn struct {
	mu    sync.Mutex
	files map[string][]byte
	rules []fakeRule
	ran   []string
}

type fakeRule struct {
	match string
	fn    func(cmd string) transport.Result
}

func newFake() *fakeConn { return &fakeConn{files: map[string][]byte{}} }

func (f *fakeConn) on(match string, fn func(cmd string) transport.Result) {
	f.rules = append(f.rules, fakeRule{match, fn})
}

func (f *fakeConn) reply(match, stdout string) {
	f.on(match, func(string) transport.Result { return transport.Result{Stdout: stdout} })
}

func (f *fakeConn) Run(_ context.Context, c transport.Cmd) (transport.Result, error) {
	f.mu.Lock()
	f.ran = append(f.ran, c.Command)
	rules := append([]fakeRule(nil), f.rules...)
	f.mu.Unlock()
	if strings.HasPrefix(c.Command, "stat -c '%a %U %G' ") {
		return transport.Result{Stdout: "644 root root\n"}, nil
	}
	for _, r := range rules {
		if strings.Contains(c.Command, r.match) {
			return r.fn(c.Command), nil
		}
	}
	return transport.Result{}, nil
}

func (f *fakeConn) Upload(_ context.Context, file transport.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[file.Path] = file.Content
	return nil
}

func (f *fakeConn) Download(_ context.Context, path string, _ bool) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

func (f *fakeConn) Close() error { return nil }

func (f *fakeConn) set(path string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = b
}

func (f *fakeConn) remove(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, path)
}

// ranMatching lists the commands that contain s.
func (f *fakeConn) ranMatching(s string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.ran {
		if strings.Contains(c, s) {
			out = append(out, c)
		}
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
