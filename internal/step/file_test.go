package step

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

// pathHost answers stat and the commands File sends (mkdir -p, `: >>`,
// chmod, chown, chgrp, rm -rf, joined with &&) on a map of paths, as
// coreutils would for paths that need no quoting. New paths get mode 755
// (directories) or 644 (files), owner and group root.
type pathHost struct {
	*fakeConn
	mu    sync.Mutex
	paths map[string]*pathInfo
}

type pathInfo struct{ typ, mode, owner, group string }

func newPathHost(t *testing.T) *pathHost {
	h := &pathHost{fakeConn: newFake(t), paths: map[string]*pathInfo{}}
	h.On(transporttest.Regexp(`^stat -c '%F\|%a\|%U\|%G' \S+ 2>/dev/null$`), func(c transporttest.Command) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		p := unquote(strings.Fields(c.Command)[3])
		i, ok := h.paths[p]
		if !ok {
			return transport.Result{ExitCode: 1}
		}
		return transport.Result{Stdout: fmt.Sprintf("%s|%s|%s|%s\n", i.typ, i.mode, i.owner, i.group)}
	})
	h.On(transporttest.Regexp(`^(mkdir -p|: >>|chmod|chown|chgrp|rm -rf) `), func(c transporttest.Command) transport.Result {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, part := range strings.Split(c.Command, " && ") {
			f := strings.Fields(part)
			p := f[len(f)-1]
			switch {
			case f[0] == "mkdir":
				h.paths[p] = &pathInfo{"directory", "755", "root", "root"}
			case f[0] == ":":
				h.paths[p] = &pathInfo{"regular empty file", "644", "root", "root"}
			case f[0] == "rm":
				delete(h.paths, p)
			case h.paths[p] == nil:
				return transport.Result{ExitCode: 1, Stderr: f[0] + ": cannot access '" + p + "': No such file or directory\n"}
			case f[0] == "chmod":
				h.paths[p].mode = f[1]
			case f[0] == "chown":
				h.paths[p].owner = f[1]
			case f[0] == "chgrp":
				h.paths[p].group = f[1]
			}
		}
		return transport.Result{}
	})
	return h
}

func (h *pathHost) add(p, typ, mode, owner, group string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paths[p] = &pathInfo{typ, mode, owner, group}
}

func (h *pathHost) info(p string) (pathInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, ok := h.paths[p]
	if !ok {
		return pathInfo{}, false
	}
	return *i, true
}

func runFile(t *testing.T, h *pathHost, noop bool, f *File) (Result, []report.Event, error) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &fakeSite{hosts: map[string]*fakeConn{"h": h.fakeConn}, noop: noop}
	x := s.exec(t, "h")
	x.Data["vars"] = map[string]any{"dir": "/srv/backups", "user": "puppet"}
	res, err := f.Run(context.Background(), x)
	return res, s.events, err
}

var fileChange = transporttest.Regexp(`^(mkdir -p|: >>|chmod|chown|chgrp|rm -rf) `)

// Each state makes the path what it says in one command, fixes only the
// attributes that differ, and does nothing the second time.
func TestFileStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *pathHost)
		file  File
		want  string // the one command sent, "" for none
		after *pathInfo
	}{
		{"new directory", nil,
			File{Path: "{{ .vars.dir }}", State: "directory", Mode: "0750", Owner: "{{ .vars.user }}", Group: "puppet"},
			"mkdir -p -- /srv/backups && chmod 750 -- /srv/backups && chown puppet -- /srv/backups && chgrp puppet -- /srv/backups",
			&pathInfo{"directory", "750", "puppet", "puppet"}},
		{"directory there, mode differs", func(h *pathHost) { h.add("/srv/backups", "directory", "755", "puppet", "puppet") },
			File{Path: "/srv/backups", State: "directory", Mode: "0750", Owner: "puppet", Group: "puppet"},
			"chmod 750 -- /srv/backups", &pathInfo{"directory", "750", "puppet", "puppet"}},
		{"directory there as wanted", func(h *pathHost) { h.add("/srv/backups", "directory", "750", "puppet", "root") },
			File{Path: "/srv/backups", State: "directory", Mode: "0750", Owner: "puppet"},
			"", &pathInfo{"directory", "750", "puppet", "root"}},
		{"new file", nil,
			File{Path: "/srv/backups/.keep", State: "touch"},
			": >> /srv/backups/.keep", &pathInfo{"regular empty file", "644", "root", "root"}},
		{"file there, owner differs", func(h *pathHost) { h.add("/etc/x", "regular file", "600", "root", "root") },
			File{Path: "/etc/x", State: "touch", Mode: "0600", Owner: "puppet"},
			"chown puppet -- /etc/x", &pathInfo{"regular file", "600", "puppet", "root"}},
		{"absent removes", func(h *pathHost) { h.add("/srv/old", "directory", "755", "root", "root") },
			File{Path: "/srv/old", State: "absent"},
			"rm -rf -- /srv/old", nil},
		{"absent already", nil,
			File{Path: "/srv/old", State: "absent"},
			"", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPathHost(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			res, _, err := runFile(t, h, false, &tc.file)
			if err != nil || res.Changed != (tc.want != "") {
				t.Fatalf("%+v %v", res, err)
			}
			got := h.Commands(fileChange)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("sent %q, want nothing", got[0].Command)
			case tc.want != "" && (len(got) != 1 || got[0].Command != tc.want):
				t.Errorf("sent %+v, want %q", got, tc.want)
			}
			p := strings.ReplaceAll(tc.file.Path, "{{ .vars.dir }}", "/srv/backups")
			info, ok := h.info(p)
			if tc.after == nil && ok || tc.after != nil && (!ok || info != *tc.after) {
				t.Errorf("%s now %+v (there: %v), want %+v", p, info, ok, tc.after)
			}
			res, _, err = runFile(t, h, false, &tc.file)
			if err != nil || res.Changed {
				t.Errorf("second run: %+v %v", res, err)
			}
			h.ReceivedN(t, fileChange, len(got))
		})
	}
}

// A path that is something else is an error, not replaced; --noop stats
// and says what it would run; the host's refusal is the step's error.
func TestFileRefusalsNoopAndErrors(t *testing.T) {
	h := newPathHost(t)
	h.add("/srv/backups", "regular file", "644", "root", "root")
	_, _, err := runFile(t, h, false, &File{Path: "/srv/backups", State: "directory"})
	if err == nil || err.Error() != "/srv/backups exists and is a regular file" {
		t.Errorf("%v", err)
	}
	h.NotReceived(t, fileChange)

	h = newPathHost(t)
	res, events, err := runFile(t, h, true, &File{Path: "/srv/backups", State: "directory", Mode: "0700"})
	if err != nil || !res.Changed {
		t.Fatalf("noop: %+v %v", res, err)
	}
	h.Received(t, transporttest.HasPrefix("stat "))
	h.NotReceived(t, fileChange)
	if len(events) != 1 || events[0].Kind != report.WouldRun || events[0].Text != "mkdir -p -- /srv/backups && chmod 700 -- /srv/backups" {
		t.Errorf("events %+v", events)
	}

	h = newPathHost(t)
	h.Fail(transporttest.HasPrefix("mkdir -p -- /proc/x"), 1, "mkdir: cannot create directory '/proc/x': No such file or directory\n")
	_, _, err = runFile(t, h, false, &File{Path: "/proc/x", State: "directory"})
	if err == nil || !strings.Contains(err.Error(), "exit status 1: mkdir: cannot create directory") {
		t.Errorf("%v", err)
	}

	// a path the shell would split is quoted
	h = newPathHost(t)
	h.Fail(transporttest.Equal(`stat -c '%F|%a|%U|%G' '/srv/my dir' 2>/dev/null`), 1, "")
	h.Reply(transporttest.Equal(`mkdir -p -- '/srv/my dir'`), "")
	if _, _, err := runFile(t, h, false, &File{Path: "/srv/my dir", State: "directory"}); err != nil {
		t.Fatal(err)
	}
	h.Received(t, transporttest.Equal(`mkdir -p -- '/srv/my dir'`))

	for _, f := range []File{{State: "directory"}, {Path: "/x", State: "link"}, {Path: "/x", State: "touch", Mode: "u+x"}} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}
