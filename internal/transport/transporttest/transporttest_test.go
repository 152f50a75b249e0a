package transporttest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/transport"
)

// recorder is a testing.TB that keeps what would fail a test instead of
// failing this one.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func run(t *testing.T, c *Conn, cmd transport.Cmd) transport.Result {
	t.Helper()
	res, err := c.Run(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The point of the package: a command no rule expects fails the test and
// does not succeed.
func TestUnexpectedCommandFailsTheTest(t *testing.T) {
	r := &recorder{TB: t}
	c := New(r)
	c.Reply(Equal("true"), "")
	res := run(t, c, transport.Cmd{Command: "rm -rf /srv"})
	if res.ExitCode == 0 {
		t.Errorf("unexpected command exited 0: %+v", res)
	}
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], `"rm -rf /srv"`) {
		t.Errorf("test errors %q, want one naming the command", r.errs)
	}
	// the control: an expected command fails nothing
	r.errs = nil
	if res := run(t, c, transport.Cmd{Command: "true"}); res.ExitCode != 0 || len(r.errs) != 0 {
		t.Errorf("%+v %q", res, r.errs)
	}
}

func TestMatchers(t *testing.T) {
	for _, tc := range []struct {
		m    Matcher
		s    string
		want bool
	}{
		{Equal("a b"), "a b", true},
		{Equal("a b"), "a b c", false},
		{HasPrefix("systemctl "), "systemctl start x", true},
		{HasPrefix("systemctl "), "sudo systemctl start x", false},
		{Contains("start"), "systemctl start x", true},
		{Contains("stop"), "systemctl start x", false},
		{Regexp(`^systemctl (start|stop) x$`), "systemctl stop x", true},
		{Regexp(`^systemctl (start|stop) x$`), "systemctl stop xy", false},
		{Any(), "", true},
	} {
		if got := tc.m.Match(tc.s); got != tc.want {
			t.Errorf("%s on %q: %v", tc.m, tc.s, got)
		}
	}
}

// The last rule added that matches answers; its result reaches the
// caller's writers and is cut at MaxOutput.
func TestRules(t *testing.T) {
	c := New(t)
	c.Reply(Any(), "default\n")
	c.Fail(HasPrefix("apt-get"), 100, "E: locked\n")
	c.On(Contains("echo"), func(cmd Command) transport.Result {
		return transport.Result{Stdout: strings.TrimPrefix(cmd.Command, "echo ") + "\n"}
	})
	c.Handle(Equal("lost"), func(Command) (transport.Result, error) { return transport.Result{}, errors.New("connection lost") })

	if res := run(t, c, transport.Cmd{Command: "uname"}); res.Stdout != "default\n" {
		t.Errorf("catch-all: %+v", res)
	}
	if res := run(t, c, transport.Cmd{Command: "apt-get install x"}); res.ExitCode != 100 || res.Stderr != "E: locked\n" {
		t.Errorf("fail: %+v", res)
	}
	if res := run(t, c, transport.Cmd{Command: "echo hi"}); res.Stdout != "hi\n" {
		t.Errorf("on: %+v", res)
	}
	if _, err := c.Run(context.Background(), transport.Cmd{Command: "lost"}); err == nil || err.Error() != "connection lost" {
		t.Errorf("transport fault: %v", err)
	}
	var out, errOut strings.Builder
	res := run(t, c, transport.Cmd{Command: "echo 0123456789", Stdout: &out, Stderr: &errOut, MaxOutput: 4})
	if res.Stdout != "0123" || !res.Truncated || out.String() != "0123" {
		t.Errorf("max output: %+v, streamed %q", res, out.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Run(ctx, transport.Cmd{Command: "uname"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Every command is recorded with its flags and stdin, and the assertions
// see them.
func TestRecording(t *testing.T) {
	c := New(t)
	c.Reply(Any(), "")
	run(t, c, transport.Cmd{Command: "systemctl start a", Sudo: true})
	run(t, c, transport.Cmd{Command: "/bin/sh -s --", Stdin: strings.NewReader("echo secret\n"), Hidden: true})
	run(t, c, transport.Cmd{Command: "systemctl start b"})

	got := c.Received(t, HasPrefix("/bin/sh"))
	if len(got) != 1 || got[0].Stdin != "echo secret\n" || !got[0].Hidden || got[0].Sudo {
		t.Errorf("%+v", got)
	}
	if got := c.ReceivedN(t, HasPrefix("systemctl start"), 2); !got[0].Sudo || got[1].Sudo {
		t.Errorf("%+v", got)
	}
	c.NotReceived(t, Contains("stop"))
	c.InOrder(t, Contains("start a"), HasPrefix("/bin/sh"), Contains("start b"))

	// each assertion fails when it should
	r := &recorder{TB: t}
	c.Received(r, Contains("stop"))
	c.ReceivedN(r, Contains("start"), 1)
	c.NotReceived(r, Contains("start a"))
	c.InOrder(r, Contains("start b"), Contains("start a"))
	c.InOrder(r, Contains("start a"), Contains("start a")) // one command, not two
	if len(r.errs) != 5 {
		t.Errorf("%d failures, want 5: %q", len(r.errs), r.errs)
	}
	if !strings.Contains(r.errs[0], `#0 "systemctl start a"`) {
		t.Errorf("a failed Received lists what was received: %s", r.errs[0])
	}
}

// Uploads are recorded with their attributes and land where Download
// reads them; a missing file is fs.ErrNotExist; failures are injected by
// path.
func TestFiles(t *testing.T) {
	c := New(t)
	ctx := context.Background()
	if _, err := c.Download(ctx, "/etc/x", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	c.WriteFile("/etc/x", []byte("old"))
	content := []byte("new")
	if err := c.Upload(ctx, transport.File{Path: "/etc/x", Content: content, Mode: 0o600, Owner: "puppet", Sudo: true}); err != nil {
		t.Fatal(err)
	}
	content[0] = 'N' // the caller's buffer is not the fake's
	if b, err := c.Download(ctx, "/etc/x", true); err != nil || string(b) != "new" {
		t.Errorf("%q %v", b, err)
	}
	if f := c.Uploaded(t, "/etc/x"); f.Mode != 0o600 || f.Owner != "puppet" || !f.Sudo || string(f.Content) != "new" {
		t.Errorf("%+v", f)
	}
	if d := c.Downloads(Equal("/etc/x")); len(d) != 2 || d[0].Sudo || !d[1].Sudo {
		t.Errorf("%+v", d)
	}
	c.NotUploaded(t, HasPrefix("/root/"))

	c.FailUpload(HasPrefix("/ro/"), errors.New("read-only file system"))
	c.FailDownload(Equal("/etc/shadow"), fs.ErrPermission)
	if err := c.Upload(ctx, transport.File{Path: "/ro/f"}); err == nil {
		t.Error("upload to /ro/ succeeded")
	}
	if _, ok := c.File("/ro/f"); ok {
		t.Error("a failed upload stored the file")
	}
	c.WriteFile("/etc/shadow", []byte("x"))
	if _, err := c.Download(ctx, "/etc/shadow", true); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("%v", err)
	}

	r := &recorder{TB: t}
	c.Uploaded(r, "/etc/y")
	c.NotUploaded(r, HasPrefix("/etc/"))
	if len(r.errs) != 2 {
		t.Errorf("%q", r.errs)
	}
	if log := c.Log(); len(log) != 5 || log[0].Download == nil || log[1].Upload == nil {
		t.Errorf("log %+v", log)
	}
}
