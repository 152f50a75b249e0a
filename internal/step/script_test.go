package step

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

func scriptExec(t *testing.T, noop bool) (*fakeSite, *fakeConn, *Exec) {
	t.Helper()
	h := newFake(t)
	s := &fakeSite{hosts: map[string]*fakeConn{"h.lab.test": h}, noop: noop}
	x := s.exec(t, "h.lab.test")
	x.Data["vars"] = map[string]any{"env": "production"}
	x.Files = fstest.MapFS{"files/deploy.sh": {Data: []byte("echo deploying {{ .vars.env }}\n")}}
	return s, h, x
}

// The script, rendered, goes on stdin of `INTERPRETER -s --` with its
// rendered, quoted args: nothing left on the host. Its output is the
// step's and streams as host lines; a run is a change.
func TestScript(t *testing.T) {
	s, h, x := scriptExec(t, false)
	h.On(transporttest.HasPrefix("/bin/sh -s --"), func(c transporttest.Command) transport.Result {
		return transport.Result{Stdout: "deploying production\ndone\n"}
	})
	sc := &Script{Src: "files/deploy.sh", Args: []string{"{{ .vars.env }}", "two words"}}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := sc.Run(context.Background(), x)
	if err != nil || !res.Changed || res.Stdout != "deploying production\ndone\n" {
		t.Fatalf("%+v %v", res, err)
	}
	got := h.ReceivedN(t, transporttest.Any(), 1)
	if got[0].Command != "/bin/sh -s -- production 'two words'" || got[0].Stdin != "echo deploying production\n" || got[0].Hidden {
		t.Errorf("sent %+v", got[0])
	}
	var lines []string
	for _, e := range s.events {
		if e.Kind == report.HostLine && e.Stream == "stdout" {
			lines = append(lines, e.Text)
		}
	}
	if strings.Join(lines, "|") != "deploying production|done" {
		t.Errorf("host lines %q", lines)
	}

	_, h, x = scriptExec(t, false)
	h.Reply(transporttest.Equal("/bin/bash -s --"), "")
	x.Sudo = true
	if _, err := (&Script{Content: "set -euo pipefail\n", Interpreter: "/bin/bash"}).Run(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if c := h.Received(t, transporttest.Equal("/bin/bash -s --")); !c[0].Sudo || c[0].Stdin != "set -euo pipefail\n" {
		t.Errorf("%+v", c)
	}
}

// --noop runs nothing and is no change; the command it would run is said.
func TestScriptNoop(t *testing.T) {
	s, h, x := scriptExec(t, true)
	res, err := (&Script{Content: "rm -rf /srv/old\n", Args: []string{"a"}}).Run(context.Background(), x)
	if err != nil || res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	if len(h.Log()) != 0 {
		t.Errorf("sent %+v", h.Log())
	}
	if len(s.events) != 1 || s.events[0].Kind != report.WouldRun || s.events[0].Text != "/bin/sh -s -- a" {
		t.Errorf("events %+v", s.events)
	}
}

// A failing script fails the step with its stderr; its exit status and
// output stay in the result for register.
func TestScriptFails(t *testing.T) {
	_, h, x := scriptExec(t, false)
	h.Respond(transporttest.HasPrefix("/bin/sh -s --"), transport.Result{ExitCode: 2, Stdout: "step 1 ok\n", Stderr: "sh: 3: nope: not found\n"})
	res, err := (&Script{Content: "echo step 1 ok\nnope\n"}).Run(context.Background(), x)
	if err == nil || err.Error() != "exit status 2: sh: 3: nope: not found" {
		t.Fatalf("%v", err)
	}
	if res.ExitCode != 2 || res.Stdout != "step 1 ok\n" || res.Stderr != "sh: 3: nope: not found\n" {
		t.Errorf("%+v", res)
	}
	// a template error: nothing sent
	_, h, x = scriptExec(t, false)
	if _, err := (&Script{Content: "{{ .vars.nope }}"}).Run(context.Background(), x); err == nil {
		t.Error("render error: none")
	}
	if len(h.Log()) != 0 {
		t.Errorf("sent %+v", h.Log())
	}
}

// An arg holding a secret is sent hidden (on stdin, out of argv).
func TestScriptSecretArg(t *testing.T) {
	_, h, x := scriptExec(t, false)
	x.Secrets = &secret.Redactor{}
	x.Secrets.Add("hunter2-s3cret")
	h.Reply(transporttest.HasPrefix("/bin/sh -s --"), "")
	if _, err := (&Script{Content: "echo \"$1\" | passwd --stdin svc\n", Args: []string{"hunter2-s3cret"}}).Run(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if c := h.Received(t, transporttest.Any()); !c[0].Hidden {
		t.Errorf("secret arg not hidden: %+v", c[0])
	}
}

func TestScriptValidate(t *testing.T) {
	for _, s := range []Script{{}, {Content: "x", Src: "files/x"}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	if err := (&Script{Src: "files/nope.sh"}).CheckSource(fstest.MapFS{}); err == nil {
		t.Error("a missing src passed CheckSource")
	}
}
