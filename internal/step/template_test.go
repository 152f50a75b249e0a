package step

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/transport"
	"github.com/troupe/troupe/internal/transport/transporttest"
)

// fileSite is one host, h.lab.test, with vars and the plans' content.
func fileSite(t *testing.T, noop, sudo bool) (*fakeSite, *fakeConn, *Exec) {
	t.Helper()
	h := newFake(t)
	s := &fakeSite{hosts: map[string]*fakeConn{"h.lab.test": h}, noop: noop}
	x := s.exec(t, "h.lab.test")
	x.Sudo = sudo
	x.Data["vars"] = map[string]any{"user": "puppet", "name": "puppet.conf"}
	x.Files = fstest.MapFS{
		"templates/puppet.conf.tmpl": {Data: []byte("[main]\nserver = {{ .host.name }}\n")},
		"files/puppet.conf":          {Data: []byte("[main]\nserver = {{ literal }}\n")},
	}
	return s, h, x
}

// A template is rendered here and written there with its mode and owner;
// the second run finds it as wanted and writes nothing.
func TestTemplateWritesOnlyOnChange(t *testing.T) {
	_, h, x := fileSite(t, false, true)
	tpl := &Template{Content: "[main]\nserver = {{ .host.name }}\n", Dest: "{{ .flavor.paths.confdir }}/puppet.conf",
		Mode: "0640", Owner: "{{ .vars.user }}", Group: "puppet"}
	if err := tpl.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := tpl.Run(context.Background(), x)
	if err != nil || !res.Changed || res.Msg != "/etc/puppet/puppet.conf written" {
		t.Fatalf("%+v %v", res, err)
	}
	f := h.Uploaded(t, "/etc/puppet/puppet.conf")
	if string(f.Content) != "[main]\nserver = h.lab.test\n" || f.Mode != 0o640 || f.Owner != "puppet" || f.Group != "puppet" || !f.Sudo {
		t.Errorf("uploaded %+v", f)
	}
	if d := h.Downloads(transporttest.Any()); len(d) != 1 || !d[0].Sudo {
		t.Errorf("read before writing: %+v", d)
	}

	res, err = tpl.Run(context.Background(), x)
	if err != nil || res.Changed || res.Msg != "/etc/puppet/puppet.conf up to date" {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if n := len(h.Uploads(transporttest.Any())); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
	h.ReceivedN(t, transporttest.HasPrefix(statAttrs), 1)
}

// The same content with another mode, owner or group is written again.
func TestTemplateAttributesDrift(t *testing.T) {
	for _, have := range []transport.File{
		{Mode: 0o644, Owner: "puppet", Group: "puppet"},
		{Mode: 0o640, Owner: "root", Group: "puppet"},
		{Mode: 0o640, Owner: "puppet", Group: "root"},
	} {
		_, h, x := fileSite(t, false, false)
		have.Path, have.Content = "/etc/puppet/puppet.conf", []byte("[main]\nserver = h.lab.test\n")
		h.SetFile(have)
		res, err := (&Template{Src: "templates/puppet.conf.tmpl", Dest: have.Path, Mode: "0640", Owner: "puppet", Group: "puppet"}).Run(context.Background(), x)
		if err != nil || !res.Changed {
			t.Errorf("%+v: %+v %v", have, res, err)
		}
		h.Uploaded(t, have.Path)
	}
}

// --noop reads the file and shows the diff; it writes nothing.
func TestTemplateNoop(t *testing.T) {
	s, h, x := fileSite(t, true, false)
	h.set("/etc/puppet/puppet.conf", []byte("[main]\nserver = old.lab.test\n"))
	res, err := (&Template{Src: "templates/puppet.conf.tmpl", Dest: "/etc/puppet/puppet.conf"}).Run(context.Background(), x)
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	h.NotUploaded(t, transporttest.Any())
	if len(s.events) != 1 || s.events[0].Kind != report.WouldWrite || s.events[0].Text != "/etc/puppet/puppet.conf" ||
		!strings.Contains(s.events[0].Diff, "-server = old.lab.test") || !strings.Contains(s.events[0].Diff, "+server = h.lab.test") {
		t.Errorf("events %+v", s.events)
	}
	// up to date: no change, no event
	h.set("/etc/puppet/puppet.conf", []byte("[main]\nserver = h.lab.test\n"))
	s.events = nil
	res, err = (&Template{Src: "templates/puppet.conf.tmpl", Dest: "/etc/puppet/puppet.conf"}).Run(context.Background(), x)
	if err != nil || res.Changed || len(s.events) != 0 {
		t.Errorf("%+v %v %+v", res, err, s.events)
	}
}

// A template that does not render fails before the host is asked
// anything; the host's refusals are reported with the path.
func TestTemplateErrors(t *testing.T) {
	_, h, x := fileSite(t, false, false)
	if _, err := (&Template{Content: "{{ .vars.missing }}", Dest: "/etc/x"}).Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("render: %v", err)
	}
	if _, err := (&Template{Src: "templates/nope.tmpl", Dest: "/etc/x"}).Run(context.Background(), x); err == nil {
		t.Error("missing src: no error")
	}
	if log := h.Log(); len(log) != 0 {
		t.Errorf("host asked %+v", log)
	}

	h.FailUpload(transporttest.Equal("/etc/ro"), errors.New("sftp: read-only file system"))
	if _, err := (&Template{Content: "x", Dest: "/etc/ro"}).Run(context.Background(), x); err == nil || err.Error() != "write /etc/ro: sftp: read-only file system" {
		t.Errorf("upload: %v", err)
	}
	h.FailDownload(transporttest.Equal("/etc/secret"), &fs.PathError{Op: "open", Path: "/etc/secret", Err: fs.ErrPermission})
	if _, err := (&Template{Content: "x", Dest: "/etc/secret"}).Run(context.Background(), x); err == nil || !strings.HasPrefix(err.Error(), "read /etc/secret: ") || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("download: %v", err)
	}
	h.NotUploaded(t, transporttest.Equal("/etc/secret"))
	// same content, and the attributes cannot be read
	h.set("/etc/unreadable", []byte("x"))
	h.Fail(transporttest.Equal(statAttrs+"/etc/unreadable"), 1, "stat: cannot statx '/etc/unreadable': Permission denied\n")
	if _, err := (&Template{Content: "x", Dest: "/etc/unreadable"}).Run(context.Background(), x); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("stat: %v", err)
	}
	h.NotUploaded(t, transporttest.Equal("/etc/unreadable"))
}

func TestTemplateValidate(t *testing.T) {
	for _, tpl := range []Template{
		{Content: "x"},
		{Dest: "/x"},
		{Dest: "/x", Content: "x", Src: "templates/x"},
		{Dest: "/x", Content: "x", Mode: "rw-r--r--"},
		{Dest: "/x", Content: "x", Mode: "17777"},
	} {
		if err := tpl.Validate(); err == nil {
			t.Errorf("%+v accepted", tpl)
		}
	}
	fsys := fstest.MapFS{"templates/bad.tmpl": {Data: []byte("{{ if }}")}}
	if err := (&Template{Src: "templates/bad.tmpl", Dest: "/x"}).CheckSource(fsys); err == nil {
		t.Error("a template that does not parse passed CheckSource")
	}
}
