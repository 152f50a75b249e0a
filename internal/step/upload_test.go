package step

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/troupe/troupe/internal/transport/transporttest"
)

// Upload sends its content as it is (never rendered), from the plans'
// files/ (a templated src picks the file), inline or from a local path;
// written once, then up to date.
func TestUpload(t *testing.T) {
	_, h, x := fileSite(t, false, false)
	local := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(local, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		u    Upload
		dest string
		want string
	}{
		{Upload{Src: "files/{{ .vars.name }}", Dest: "/etc/puppet/{{ .vars.name }}"}, "/etc/puppet/puppet.conf", "[main]\nserver = {{ literal }}\n"},
		{Upload{Content: "{{ .host.name }}\n", Dest: "/etc/inline"}, "/etc/inline", "{{ .host.name }}\n"},
		{Upload{Src: local, Dest: "/etc/puppet/key.pem", Mode: "0600", Owner: "puppet"}, "/etc/puppet/key.pem", "-----BEGIN PRIVATE KEY-----\n"},
	} {
		if err := tc.u.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := tc.u.CheckSource(x.Files); err != nil {
			t.Errorf("%s: CheckSource: %v", tc.dest, err)
		}
		res, err := tc.u.Run(context.Background(), x)
		if err != nil || !res.Changed || res.Msg != tc.dest+" written" {
			t.Fatalf("%s: %+v %v", tc.dest, res, err)
		}
		f := h.Uploaded(t, tc.dest)
		mode, _ := parseMode(tc.u.Mode)
		if string(f.Content) != tc.want || f.Mode != mode || f.Owner != tc.u.Owner {
			t.Errorf("%s: uploaded %+v", tc.dest, f)
		}
		res, err = tc.u.Run(context.Background(), x)
		if err != nil || res.Changed {
			t.Errorf("%s second run: %+v %v", tc.dest, res, err)
		}
		if n := len(h.Uploads(transporttest.Equal(tc.dest))); n != 1 {
			t.Errorf("%s: %d uploads", tc.dest, n)
		}
	}
}

// --noop writes nothing; a missing src fails before the host is asked.
func TestUploadNoopAndErrors(t *testing.T) {
	s, h, x := fileSite(t, true, false)
	res, err := (&Upload{Content: "x\n", Dest: "/etc/x"}).Run(context.Background(), x)
	if err != nil || !res.Changed || len(s.events) != 1 || !strings.Contains(s.events[0].Diff, "+x") {
		t.Fatalf("%+v %v %+v", res, err, s.events)
	}
	h.NotUploaded(t, transporttest.Any())

	_, h, x = fileSite(t, false, false)
	if _, err := (&Upload{Src: "files/nope", Dest: "/etc/x"}).Run(context.Background(), x); err == nil {
		t.Error("missing src: no error")
	}
	if len(h.Log()) != 0 {
		t.Errorf("host asked %+v", h.Log())
	}
	if err := (&Upload{Src: "files/nope", Dest: "/x"}).CheckSource(x.Files); err == nil || !strings.Contains(err.Error(), `src "files/nope"`) {
		t.Errorf("CheckSource: %v", err)
	}
	if err := (&Upload{Src: "files/{{ .vars.name }}", Dest: "/x"}).CheckSource(fstest.MapFS{}); err != nil {
		t.Errorf("a templated src is only known at run time: %v", err)
	}
	for _, u := range []Upload{{Content: "x"}, {Dest: "/x"}, {Dest: "/x", Content: "x", Src: "files/x"}, {Dest: "/x", Content: "x", Mode: "0x1"}} {
		if err := u.Validate(); err == nil {
			t.Errorf("%+v accepted", u)
		}
	}
}
