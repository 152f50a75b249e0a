package secret

import "testing"

func TestMaskURL(t *testing.T) {
	for _, c := range []struct{ in, want, pass string }{
		{"https://deploy:tok3n@git.example.com/control.git", "https://deploy:********@git.example.com/control.git", "tok3n"},
		// net/url refuses these: the textual rule masks them all the same
		{"https://deploy:pa/ss@git.example.com/control.git", "https://deploy:********@git.example.com/control.git", "pa/ss"},
		{"https://deploy:pa%zzss@git.example.com/control.git", "https://deploy:********@git.example.com/control.git", "pa%zzss"},
		{"https://deploy:pa#ss@git.example.com/control.git", "https://deploy:********@git.example.com/control.git", "pa#ss"},
		{"https://deploy:p@ss@git.example.com/x", "https://deploy:********@git.example.com/x", "p@ss"},
		// parses, with "12" taken for a port: masked too
		{"https://deploy:12/ab@git.example.com/x", "https://deploy:********@git.example.com/x", "12/ab"},
		// a parsable URL with an "@" in its path keeps its path
		{"https://deploy:tok@git.example.com/a@b", "https://deploy:********@git.example.com/a@b", "tok"},
		// nothing to mask
		{"https://git.example.com/control.git", "https://git.example.com/control.git", ""},
		{"ssh://git@git.example.com:22/control.git", "ssh://git@git.example.com:22/control.git", ""},
		{"git@github.com:org/control.git", "git@github.com:org/control.git", ""},
		{"https://deploy:@git.example.com/x", "https://deploy:@git.example.com/x", ""},
		{"not a url: x:y@z", "not a url: x:y@z", ""},
	} {
		if got := MaskURL(c.in); got != c.want {
			t.Errorf("MaskURL(%q) = %q, want %q", c.in, got, c.want)
		}
		p, ok := URLPassword(c.in)
		if p != c.pass || ok != (c.pass != "") {
			t.Errorf("URLPassword(%q) = %q, %v; want %q", c.in, p, ok, c.pass)
		}
	}
}

func TestMaskURLs(t *testing.T) {
	in := "fatal: unable to access 'https://deploy:pa/ss#1@git.example.com/control.git/': 403\n" +
		"remote https://u:tok%@h/r and https://plain.example.com/x and ssh://git@h/x"
	want := "fatal: unable to access 'https://deploy:********@git.example.com/control.git/': 403\n" +
		"remote https://u:********@h/r and https://plain.example.com/x and ssh://git@h/x"
	if got := MaskURLs(in); got != want {
		t.Errorf("MaskURLs:\n got %q\nwant %q", got, want)
	}
}
