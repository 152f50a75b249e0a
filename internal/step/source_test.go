package step_test

import (
	"regexp"
	"testing"
	"testing/fstest"

	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/step"
)

// A source file that is missing or a template that does not parse is a load
// error (so `plan validate` reports it), positioned at the step's src.
func TestSourcesCheckedAtLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"files/motd":           {Data: []byte("hello\n")},
		"templates/good.tmpl":  {Data: []byte("host {{ .host.name }}\n")},
		"templates/bad.tmpl":   {Data: []byte("line one\n{{ if .x }}unclosed\n")},
		"roles/.keep":          {},
		"plans/ok.yaml":        {Data: []byte("name: ok\nsteps:\n  - {id: a, targets: all, upload: {src: files/motd, dest: /etc/motd}}\n  - {id: b, targets: all, template: {src: templates/good.tmpl, dest: /x}}\n  - {id: c, targets: all, upload: {src: 'files/{{ .vars.f }}', dest: /y}}\n")},
		"plans/missing.yaml":   {Data: []byte("name: missing\nsteps:\n  - id: a\n    targets: all\n    upload: {src: files/nope, dest: /etc/motd}\n  - {id: b, targets: all, script: {src: files/gone.sh}}\n")},
		"plans/badtmpl.yaml":   {Data: []byte("name: badtmpl\nsteps:\n  - id: t\n    targets: all\n    template:\n      src: templates/bad.tmpl\n      dest: /x\n")},
		"plans/missingtp.yaml": {Data: []byte("name: missingtp\nsteps:\n  - {id: t, targets: all, template: {src: templates/nope.tmpl, dest: /x}}\n")},
	}
	l := &plan.Loader{FS: fsys, Actions: step.Registry{}, Funcs: render.Funcs()}
	if _, err := l.Load("ok"); err != nil {
		t.Fatalf("present sources (and a templated src, known only per host) must load: %v", err)
	}
	for name, want := range map[string]string{
		"missing":   `(?s)plans/missing\.yaml:5:\d+: step "a" upload: src "files/nope": open files/nope: no such file.*plans/missing\.yaml:6:\d+: step "b" script: src "files/gone.sh"`,
		"badtmpl":   `plans/badtmpl\.yaml:6:12: step "t" template: template: templates/bad\.tmpl:3: unexpected EOF`,
		"missingtp": `plans/missingtp\.yaml:3:43: step "t" template: src "templates/nope.tmpl"`,
	} {
		_, err := l.Load(name)
		if err == nil || !regexp.MustCompile(want).MatchString(err.Error()) {
			t.Errorf("%s: got %v\nwant match %s", name, err, want)
		}
	}
}
