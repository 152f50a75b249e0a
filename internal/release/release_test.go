package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe/troupe/internal/cli"
	"github.com/troupe/troupe/internal/completion"
)

func TestDebVersion(t *testing.T) {
	at := time.Date(2026, 12, 7, 2, 42, 1, 0, time.UTC)
	for in, want := range map[string]string{
		"v1.2.0":                  "1.2.0",
		"v1.2.0-dirty":            "1.2.0+dirty",
		"v1.3.0-rc1":              "1.3.0~rc1",
		"v1.2.0-4-gabc1234":       "1.2.0+4.gabc1234",
		"v1.2.0-4-gabc1234-dirty": "1.2.0+4.gabc1234.dirty",
		"v1.3.0-rc1-2-gabc1234":   "1.3.0~rc1+2.gabc1234",
		"abc1234":                 "0.0.0+git20261207024201.abc1234",
		"abc1234-dirty":           "0.0.0+git20261207024201.abc1234.dirty",
	} {
		got, err := DebVersion(in, at)
		if err != nil || got != want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// what dpkg must refuse is refused here, with the version named
	for _, bad := range []string{"release-one", "v1.2 beta", ""} {
		if got, err := DebVersion(bad, at); err == nil {
			t.Errorf("DebVersion(%q) = %q, want an error", bad, got)
		}
	}
	// and the order dpkg sees is the commits' order
	if dpkg, err := exec.LookPath("dpkg"); err == nil {
		order := []string{"0.0.0+git20261207024201.abc1234", "1.2.0", "1.2.0+4.gabc1234", "1.2.0+4.gabc1234.dirty", "1.3.0~rc1", "1.3.0~rc1+2.gabc1234", "1.3.0"}
		for i := 1; i < len(order); i++ {
			if err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
				t.Errorf("dpkg: %s is not before %s", order[i-1], order[i])
			}
		}
	}
}

// troupe itself does not link the packaging library.
func TestTroupeDoesNotLinkNfpm(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../../cmd/troupe", "../../cmd/troupe-release").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/goreleaser/nfpm/v2") {
		t.Fatalf("go list -deps shows no nfpm at all:\n%s", out)
	}
	out, err = exec.Command("go", "list", "-deps", "../../cmd/troupe").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "goreleaser") || strings.Contains(string(out), "internal/release") {
		t.Fatalf("cmd/troupe depends on the release builder or nfpm")
	}
}

// TestBuildAmd64 builds the release for amd64 and reads the .deb with dpkg's
// own tools: control fields, every file with its mode and owner, the man
// page and completions it carries, the binary's version, and the checksums.
func TestBuildAmd64(t *testing.T) {
	if testing.Short() {
		t.Skip("builds troupe")
	}
	for _, tool := range []string{"dpkg-deb", "sha256sum", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "troupe_old_amd64.deb"), []byte("stale"), 0o644)
	os.WriteFile(filepath.Join(out, "keep.txt"), []byte("not ours"), 0o644)
	r, err := Build(context.Background(), Options{Root: "../..", Out: out, Version: "v1.2.0-4-gabc1234", Arches: []string{"amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.DebVersion != "1.2.0+4.gabc1234" {
		t.Errorf("deb version %q", r.DebVersion)
	}
	debFile := r.Debs["amd64"]
	if filepath.Base(debFile) != "troupe_1.2.0+4.gabc1234_amd64.deb" {
		t.Errorf("deb file %s", debFile)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"SHA256SUMS", "keep.txt", "troupe_1.2.0+4.gabc1234_amd64.deb", "troupe_1.2.0+4.gabc1234_linux_amd64"}; !slices.Equal(names, want) {
		t.Errorf("out holds %v, want %v (stale artefacts gone, others kept)", names, want)
	}

	// control fields
	for field, want := range map[string]string{"Package": "troupe", "Version": "1.2.0+4.gabc1234", "Architecture": "amd64",
		"Section": "admin", "Priority": "optional", "Maintainer": maintainer, "Homepage": homepage} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", debFile, field)); got != want {
			t.Errorf("control %s = %q, want %q", field, got, want)
		}
	}
	if desc := run(t, "dpkg-deb", "-f", debFile, "Description"); !strings.HasPrefix(desc, "run YAML plans over SSH") {
		t.Errorf("Description = %q", desc)
	}
	if dep := strings.TrimSpace(run(t, "dpkg-deb", "-f", debFile, "Depends")); dep != "" {
		t.Errorf("a static binary needs nothing, but Depends = %q", dep)
	}

	// files: mode, owner, path
	listing := run(t, "dpkg-deb", "-c", debFile)
	for path, mode := range map[string]string{BinPath: "-rwxr-xr-x", ManPath: "-rw-r--r--", BashPath: "-rw-r--r--", ZshPath: "-rw-r--r--", FishPath: "-rw-r--r--"} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + ` root/root +\d+ [0-9-]+ [0-9:]+ \.` + regexp.QuoteMeta(path) + `$`)
		if !re.MatchString(listing) {
			t.Errorf("no %s %s root/root in\n%s", mode, path, listing)
		}
	}
	if n := strings.Count(listing, "\n-"); n != 5 {
		t.Errorf("%d files, want 5:\n%s", n, listing)
	}

	// contents, from the unpacked package
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", debFile, root)
	k, err := cli.New()
	if err != nil {
		t.Fatal(err)
	}
	for shell, path := range map[string]string{"bash": BashPath, "zsh": ZshPath, "fish": FishPath} {
		var want bytes.Buffer
		completion.Write(&want, shell, "troupe", completion.FromKong(k.Model.Node))
		if got, _ := os.ReadFile(filepath.Join(root, path)); want.Len() == 0 || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: not troupe's %s completion (%d bytes)", path, shell, len(got))
		}
	}
	man := gunzip(t, filepath.Join(root, ManPath))
	for _, want := range []string{".TH TROUPE 1 ", `"troupe v1.2.0-4-gabc1234"`, ".SS \"troupe plan list\"", ".SH EXIT STATUS"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	bin := filepath.Join(root, BinPath)
	if got := strings.TrimSpace(run(t, bin, "version", "--short")); got != "v1.2.0-4-gabc1234" {
		t.Errorf("packaged troupe version --short = %q", got)
	}
	if got := run(t, bin, "version"); !strings.Contains(got, "commit: "+r.Commit) || !strings.Contains(got, "linux/amd64") {
		t.Errorf("packaged troupe version:\n%s\nwant commit %s, linux/amd64", got, r.Commit)
	}

	// static, and nothing of the build machine in the binary or the page
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary is dynamically linked (%v)", p.Type)
		}
	}
	ef.Close()
	abs, _ := filepath.Abs("../..")
	gopath := strings.TrimSpace(run(t, "go", "env", "GOPATH"))
	binBytes, _ := os.ReadFile(bin)
	for _, leak := range []string{abs + "/", gopath + "/pkg/mod", os.TempDir() + "/troupe-release"} {
		if bytes.Contains(binBytes, []byte(leak)) || strings.Contains(man, leak) {
			t.Errorf("build machine's path %q in the binary or man page", leak)
		}
	}

	// checksums: sha256sum -c passes, and fails on a changed file
	sums, _ := os.ReadFile(r.Sums)
	if lines := strings.Split(strings.TrimSpace(string(sums)), "\n"); len(lines) != 2 {
		t.Fatalf("SHA256SUMS:\n%s\nwant the binary and the .deb", sums)
	}
	check := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 2 {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
	f, _ := os.OpenFile(debFile, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0})
	f.Close()
	check = exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum -c passed on a changed .deb:\n%s", b)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
