package safefile

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// nobody plays "another local user": the tests run as root, and root is
// trusted, so a directory chowned to nobody is someone else's.
const nobody = 65534

func mkdir(t *testing.T, path string, mode fs.FileMode, owner int) string {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask, and the sticky bit
		t.Fatal(err)
	}
	if err := os.Lchown(path, owner, owner); err != nil {
		t.Fatal(err)
	}
	return path
}

func symlink(t *testing.T, target, link string, owner int) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, owner, owner); err != nil {
		t.Fatal(err)
	}
}

// victim is a file a planted link points at; untouched checks it kept its content.
func victim(t *testing.T, dir string) (string, func()) {
	t.Helper()
	p := filepath.Join(dir, "victim")
	if err := os.WriteFile(p, []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, func() {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "original\n" {
			t.Errorf("the link's target was written through: %q, %v", b, err)
		}
	}
}

func wantUnsafe(t *testing.T, err error, path, reason string) {
	t.Helper()
	var ue *UnsafeError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want a refusal of %s", err, path)
	}
	if ue.Path != path || !strings.Contains(ue.Reason, reason) {
		t.Errorf("refused %s (%s), want %s (%s)", ue.Path, ue.Reason, path, reason)
	}
}

func wantFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a regular file %v", path, fi.Mode(), mode)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("%s holds %q, want %q", path, b, content)
	}
}

// The ca-backup download into /tmp: another user made /tmp/HOST first and
// planted the temporary file's name as a link to a file of theirs.
func TestWriteFileRefusesAnotherUsersDirectory(t *testing.T) {
	tmp := mkdir(t, filepath.Join(t.TempDir(), "tmp"), 0o1777|fs.ModeSticky, 0)
	hostDir := mkdir(t, filepath.Join(tmp, "ca.example"), 0o755, nobody)
	target, untouched := victim(t, t.TempDir())
	symlink(t, target, filepath.Join(hostDir, "ca.tar.gz.tmp"), nobody)
	symlink(t, target, filepath.Join(hostDir, "ca.tar.gz"), nobody)

	err := WriteFile(filepath.Join(hostDir, "ca.tar.gz"), []byte("CA KEY"), 0o600)
	wantUnsafe(t, err, hostDir, "owned by uid 65534")
	untouched()
	if es, _ := os.ReadDir(hostDir); len(es) != 2 {
		t.Errorf("something was left in %s: %v", hostDir, es)
	}

	// positive control: a host directory of our own in the same sticky /tmp
	mine := filepath.Join(tmp, "ca2.example", "ca.tar.gz")
	if err := WriteFile(mine, []byte("CA KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, mine, "CA KEY", 0o600)
	if fi, _ := os.Stat(filepath.Dir(mine)); fi.Mode().Perm() != 0o700 {
		t.Errorf("made %s with mode %v, want 0700", filepath.Dir(mine), fi.Mode())
	}
}

// The host directory itself replaced by another user's link.
func TestWriteFileRefusesAnotherUsersLinkOnThePath(t *testing.T) {
	tmp := mkdir(t, filepath.Join(t.TempDir(), "tmp"), 0o1777|fs.ModeSticky, 0)
	theirs := mkdir(t, filepath.Join(t.TempDir(), "theirs"), 0o700, 0)
	link := filepath.Join(tmp, "ca.example")
	symlink(t, theirs, link, nobody)
	err := WriteFile(filepath.Join(link, "ca.tar.gz"), []byte("CA KEY"), 0o600)
	wantUnsafe(t, err, link, "the symbolic link "+link+" is owned by uid 65534")
	if es, _ := os.ReadDir(theirs); len(es) != 0 {
		t.Errorf("written through the link: %v", es)
	}

	// positive control: the same link made by root is followed
	os.Remove(link)
	symlink(t, theirs, link, 0)
	if err := WriteFile(filepath.Join(link, "ca.tar.gz"), []byte("CA KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(theirs, "ca.tar.gz"), "CA KEY", 0o600)
}

// In a directory of ours, a link at the file's name is replaced, never
// followed, and the modes asked for are the modes given.
func TestWriteFileReplacesALinkAtTheName(t *testing.T) {
	dir := mkdir(t, filepath.Join(t.TempDir(), "state"), 0o700, 0)
	target, untouched := victim(t, t.TempDir())
	p := filepath.Join(dir, "journal.ndjson")
	symlink(t, target, p, 0)
	if err := WriteFile(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	untouched()
	wantFile(t, p, "secret", 0o600)
	q := filepath.Join(dir, "sum")
	if err := WriteFile(q, []byte("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFile(t, q, "public", 0o644)
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("temporary files left behind: %v", es)
	}
}

func TestWritableDirectoriesRefused(t *testing.T) {
	base := t.TempDir()
	for _, c := range []struct {
		name   string
		mode   fs.FileMode
		reason string
	}{
		{"world", 0o777, "world-writable (mode 0777)"},
		{"group", 0o770, "group-writable (mode 0770)"},
		{"sticky", 0o1777 | fs.ModeSticky, "world-writable"}, // fine above, not to write in
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := mkdir(t, filepath.Join(base, c.name), c.mode, 0)
			_, err := MkdirAll(dir)
			wantUnsafe(t, err, dir, c.reason)
			err = WriteFile(filepath.Join(dir, "f"), nil, 0o600)
			wantUnsafe(t, err, dir, c.reason)
			if _, err := os.Lstat(filepath.Join(dir, "f")); err == nil {
				t.Error("written anyway")
			}
		})
	}
	// above the directory written in: sticky is fine, writable is not
	sticky := filepath.Join(base, "sticky", "sub")
	if _, err := MkdirAll(sticky); err != nil {
		t.Errorf("under a sticky directory: %v", err)
	}
	_, err := MkdirAll(filepath.Join(base, "world", "sub"))
	wantUnsafe(t, err, filepath.Join(base, "world"), "world-writable")
	// a directory of another user above ours: they can rename ours away
	other := mkdir(t, filepath.Join(base, "other"), 0o755, nobody)
	mkdir(t, filepath.Join(other, "mine"), 0o700, 0)
	_, err = MkdirAll(filepath.Join(other, "mine"))
	wantUnsafe(t, err, other, "owned by uid 65534")
}

func TestOpenAppend(t *testing.T) {
	dir := mkdir(t, filepath.Join(t.TempDir(), "logs"), 0o700, 0)
	target, untouched := victim(t, t.TempDir())
	link := filepath.Join(dir, "run.log")
	symlink(t, target, link, 0)
	_, err := OpenAppend(link, 0o600)
	wantUnsafe(t, err, link, "symbolic link")
	untouched()

	theirs := filepath.Join(dir, "theirs.log")
	if err := os.WriteFile(theirs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(theirs, nobody, nobody)
	_, err = OpenAppend(theirs, 0o600)
	wantUnsafe(t, err, theirs, "owned by uid 65534")

	p := filepath.Join(dir, "ok.log")
	for _, s := range []string{"one\n", "two\n"} {
		f, err := OpenAppend(p, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	wantFile(t, p, "one\ntwo\n", 0o600)
}

func TestCheckTree(t *testing.T) {
	good := func(t *testing.T) string {
		root := mkdir(t, filepath.Join(t.TempDir(), "content"), 0o755, 0)
		mkdir(t, filepath.Join(root, "plans"), 0o755, 0)
		if err := os.WriteFile(filepath.Join(root, "plans", "ping.yaml"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return root
	}
	if err := CheckTree(good(t)); err != nil {
		t.Fatalf("a tree of root's: %v", err)
	}
	t.Run("world-writable file", func(t *testing.T) {
		root := good(t)
		f := filepath.Join(root, "plans", "ping.yaml")
		os.Chmod(f, 0o666)
		wantUnsafe(t, CheckTree(root), f, "world-writable")
	})
	t.Run("another user's file", func(t *testing.T) {
		root := good(t)
		f := filepath.Join(root, "plans", "ping.yaml")
		os.Chown(f, nobody, nobody)
		wantUnsafe(t, CheckTree(root), f, "owned by uid 65534")
	})
	t.Run("group-writable directory", func(t *testing.T) {
		root := good(t)
		os.Chmod(filepath.Join(root, "plans"), 0o775)
		wantUnsafe(t, CheckTree(root), filepath.Join(root, "plans"), "group-writable")
	})
	t.Run("the root itself world-writable", func(t *testing.T) {
		root := good(t)
		os.Chmod(root, 0o1777|fs.ModeSticky)
		wantUnsafe(t, CheckTree(root), root, "world-writable")
	})
	t.Run("another user's link", func(t *testing.T) {
		root := good(t)
		l := filepath.Join(root, "plans", "evil.yaml")
		symlink(t, filepath.Join(root, "plans", "ping.yaml"), l, nobody)
		wantUnsafe(t, CheckTree(root), l, "symbolic link")
	})
	t.Run("our link to a file in a world-writable directory", func(t *testing.T) {
		root := good(t)
		ww := mkdir(t, filepath.Join(t.TempDir(), "ww"), 0o777, 0)
		os.WriteFile(filepath.Join(ww, "x.yaml"), nil, 0o644)
		symlink(t, filepath.Join(ww, "x.yaml"), filepath.Join(root, "plans", "x.yaml"), 0)
		wantUnsafe(t, CheckTree(root), ww, "world-writable")
	})
	t.Run("our link to a good file", func(t *testing.T) {
		root := good(t)
		other := good(t)
		symlink(t, filepath.Join(other, "plans", "ping.yaml"), filepath.Join(root, "plans", "x.yaml"), 0)
		symlink(t, filepath.Join(other, "plans"), filepath.Join(root, "more"), 0)
		if err := CheckTree(root); err != nil {
			t.Error(err)
		}
	})
}

func TestHome(t *testing.T) {
	t.Setenv("HOME", "/home/set")
	if h, err := Home(); err != nil || h != "/home/set" {
		t.Errorf("with $HOME: %q, %v", h, err)
	}
	t.Setenv("HOME", "")
	defer func(f func(string) (*user.User, error)) { lookupUID = f }(lookupUID)
	lookupUID = func(string) (*user.User, error) { return &user.User{HomeDir: "/var/lib/op"}, nil }
	if h, err := Home(); err != nil || h != "/var/lib/op" {
		t.Errorf("from the user database: %q, %v", h, err)
	}
	for _, u := range []*user.User{nil, {HomeDir: ""}, {HomeDir: "relative"}} {
		lookupUID = func(string) (*user.User, error) {
			if u == nil {
				return nil, errors.New("no such user")
			}
			return u, nil
		}
		if h, err := Home(); err == nil || !strings.Contains(err.Error(), "$HOME is not set") {
			t.Errorf("%v: %q, %v; want a refusal", u, h, err)
		}
	}
}
