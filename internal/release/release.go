// Package release builds troupe's release artefacts: a static binary per
// Linux architecture, a .deb per architecture (with the man page and the
// shell completions), and a SHA256SUMS file, all in one directory. It is the
// body of cmd/troupe-release (`just release`) and of the end-to-end test that
// installs the .deb on a lab host; the troupe binary never imports it, so
// the packaging library (nfpm) stays out of troupe.
package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/troupe/troupe/internal/cli"
	"github.com/troupe/troupe/internal/completion"
	"github.com/troupe/troupe/internal/manpage"
)

// Options say what to build. Zero values take the defaults.
type Options struct {
	Root    string   // the module's root; default: the directory holding go.mod above the working directory
	Out     string   // where the artefacts go; default: Root/dist
	Version string   // default: `git describe --tags --always --dirty`
	Arches  []string // GOARCH values; default: amd64, arm64
	Log     io.Writer
}

// Result names what was built.
type Result struct {
	Version    string            // as `troupe version` prints it
	DebVersion string            // as dpkg knows it
	Commit     string            // full hash, or "unknown"
	Binaries   map[string]string // GOARCH → path
	Debs       map[string]string // GOARCH → path
	Sums       string            // path of SHA256SUMS
}

// Where the .deb puts what (Debian's places for each).
const (
	BinPath  = "/usr/bin/troupe"
	ManPath  = "/usr/share/man/man1/troupe.1.gz"
	BashPath = "/usr/share/bash-completion/completions/troupe"
	ZshPath  = "/usr/share/zsh/vendor-completions/_troupe"
	FishPath = "/usr/share/fish/vendor_completions.d/troupe.fish"
)

const (
	maintainer = "The troupe authors"
	homepage   = "https://github.com/troupe/troupe"
	pkgDesc    = "run YAML plans over SSH to build a load-balanced Puppet site\n" +
		"troupe is one static binary that runs YAML plans over SSH to build and\n" +
		"operate a load-balanced open-source Puppet site: a CA, compilers behind\n" +
		"HAProxy, PuppetDB and r10k. Its plans and roles are built in."
)

// Build builds every artefact into o.Out, replacing earlier ones.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	src, err := describe(ctx, o.Root, o.Version)
	if err != nil {
		return nil, err
	}
	debVer, err := DebVersion(src.version, src.time)
	if err != nil {
		return nil, err
	}
	r := &Result{Version: src.version, DebVersion: debVer, Commit: src.commit,
		Binaries: map[string]string{}, Debs: map[string]string{}, Sums: filepath.Join(o.Out, "SHA256SUMS")}
	if err := clean(o.Out); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "troupe-release")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	docs, err := writeDocs(tmp, src)
	if err != nil {
		return nil, err
	}
	var outputs []string
	for _, arch := range o.Arches {
		bin := filepath.Join(o.Out, fmt.Sprintf("troupe_%s_linux_%s", debVer, arch))
		if err := goBuild(ctx, o.Root, arch, bin, src); err != nil {
			return nil, err
		}
		debFile, err := buildDeb(o.Out, arch, debVer, src.time, bin, docs)
		if err != nil {
			return nil, err
		}
		r.Binaries[arch], r.Debs[arch] = bin, debFile
		outputs = append(outputs, bin, debFile)
		for _, f := range []string{bin, debFile} {
			if st, err := os.Stat(f); err == nil {
				fmt.Fprintf(o.Log, "%-60s %5.1f MiB\n", filepath.Base(f), float64(st.Size())/(1<<20))
			}
		}
	}
	if err := writeSums(r.Sums, outputs); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "%-60s (sha256sum -c)\n", "SHA256SUMS")
	return r, nil
}

func (o *Options) defaults() error {
	if o.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		for o.Root = wd; ; o.Root = filepath.Dir(o.Root) {
			if _, err := os.Stat(filepath.Join(o.Root, "go.mod")); err == nil {
				break
			}
			if o.Root == "/" {
				return fmt.Errorf("no go.mod above %s", wd)
			}
		}
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Root, "dist")
	}
	if len(o.Arches) == 0 {
		o.Arches = []string{"amd64", "arm64"}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return os.MkdirAll(o.Out, 0o755)
}

// source is what the build says about itself.
type source struct {
	version, commit string
	time            time.Time // the commit's: file dates and the man page's, so a rebuild is identical
}

func describe(ctx context.Context, root, version string) (source, error) {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	s := source{version: version, commit: git("rev-parse", "HEAD")}
	if s.version == "" {
		s.version = git("describe", "--tags", "--always", "--dirty")
	}
	if s.version == "" {
		return s, fmt.Errorf("no version: %s is not a git work tree; give one (-version)", root)
	}
	if s.commit == "" {
		s.commit = "unknown"
	}
	s.time = time.Now().UTC().Truncate(time.Second)
	if sec, err := strconv.ParseInt(git("log", "-1", "--format=%ct"), 10, 64); err == nil {
		s.time = time.Unix(sec, 0).UTC()
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		if sec, err := strconv.ParseInt(e, 10, 64); err == nil {
			s.time = time.Unix(sec, 0).UTC()
		}
	}
	return s, nil
}

var (
	describeTail = regexp.MustCompile(`-(\d+)-g([0-9a-f]+)$`)
	hashOnly     = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	debOK        = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebVersion turns a `git describe --tags --always --dirty` string into a
// Debian version that sorts the way the commits came:
//
//	v1.2.0                  → 1.2.0
//	v1.3.0-rc1              → 1.3.0~rc1 (before 1.3.0)
//	v1.2.0-4-gabc1234       → 1.2.0+4.gabc1234 (after 1.2.0)
//	abc1234 (no tag yet)    → 0.0.0+git20261207024201.abc1234 (the commit's time)
//	any of them, -dirty     → … +dirty or .dirty
func DebVersion(describe string, commitTime time.Time) (string, error) {
	v, dirty := strings.CutSuffix(describe, "-dirty")
	var meta []string
	if hashOnly.MatchString(v) {
		meta = append(meta, "git"+commitTime.UTC().Format("20060102150405"), v)
		v = "0.0.0"
	} else if m := describeTail.FindStringSubmatch(v); m != nil {
		meta = append(meta, m[1], "g"+m[2])
		v = strings.TrimSuffix(v, m[0])
	}
	v = strings.Replace(strings.TrimPrefix(v, "v"), "-", "~", 1)
	if dirty {
		meta = append(meta, "dirty")
	}
	if len(meta) > 0 {
		v += "+" + strings.Join(meta, ".")
	}
	if !debOK.MatchString(v) {
		return "", fmt.Errorf("version %q makes no Debian version (%q): tag releases vN.N.N", describe, v)
	}
	return v, nil
}

// clean removes what an earlier Build left in out (and nothing else).
func clean(out string) error {
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if n := e.Name(); n == "SHA256SUMS" || (strings.HasPrefix(n, "troupe_") && !e.IsDir()) {
			if err := os.Remove(filepath.Join(out, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// goBuild builds a static troupe for linux/arch; -trimpath keeps the build
// machine's paths out of it.
func goBuild(ctx context.Context, root, arch, out string, s source) error {
	ldflags := fmt.Sprintf("-s -w -X github.com/troupe/troupe/internal/buildinfo.Version=%s -X github.com/troupe/troupe/internal/buildinfo.Commit=%s", s.version, s.commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto", "-ldflags", ldflags, "-o", out, "./cmd/troupe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build linux/%s: %w\n%s", arch, err, b)
	}
	return nil
}

// docs are the files the .deb carries besides the binary: destination → source.
type docs map[string]string

// writeDocs writes the man page and the completion scripts into dir.
func writeDocs(dir string, s source) (docs, error) {
	k, err := cli.New()
	if err != nil {
		return nil, err
	}
	d := docs{}
	var man bytes.Buffer
	if err := manpage.Write(&man, k.Model, ManPage(s.version, s.time)); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, no time: reproducible
	zw.Write(man.Bytes())
	if err := zw.Close(); err != nil {
		return nil, err
	}
	files := map[string][]byte{ManPath: gz.Bytes()}
	for shell, dst := range map[string]string{"bash": BashPath, "zsh": ZshPath, "fish": FishPath} {
		var b bytes.Buffer
		if err := completion.Write(&b, shell, "troupe", completion.FromKong(k.Model.Node)); err != nil {
			return nil, err
		}
		files[dst] = b.Bytes()
	}
	for dst, b := range files {
		src := filepath.Join(dir, filepath.Base(dst))
		if err := os.WriteFile(src, b, 0o644); err != nil {
			return nil, err
		}
		d[dst] = src
	}
	return d, nil
}

// ManPage is troupe's man page beyond what the command tree says.
func ManPage(version string, date time.Time) manpage.Page {
	return manpage.Page{Version: version, Date: date,
		Description: cli.Description + "\n\n" +
			"A plan is a YAML file of steps, each run on the hosts of an inventory over SSH. " +
			"The plans and roles that build and operate the site (bootstrap, upgrade, add-compiler, certificates …) are built in: " +
			"troupe plan list names them. A directory with plans/ and roles/ (--content, or the current directory when it has them) overrides them file by file.\n\n" +
			"troupe plan validate and troupe run check their input first: bad input is reported with file:line:col and exit status 2 before anything runs.",
		Sections: []manpage.Section{
			{Title: "Exit status", Items: []manpage.Item{
				{Tag: "0", Text: "Success."},
				{Tag: "1", Text: "A step failed, or (troupe status) the site is unhealthy."},
				{Tag: "2", Text: "Bad input (a plan, an inventory, a flag): nothing ran."},
				{Tag: "130", Text: "Interrupted (Ctrl-C)."},
			}},
			{Title: "See also", Text: "ssh(1), puppet(8). " + homepage},
		}}
}

// buildDeb packs the binary and docs into out/troupe_VERSION_ARCH.deb.
func buildDeb(out, arch, version string, mtime time.Time, bin string, d docs) (string, error) {
	contents := files.Contents{{Source: bin, Destination: BinPath, FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: mtime}}}
	for _, dst := range slices.Sorted(func(yield func(string) bool) {
		for k := range d {
			if !yield(k) {
				return
			}
		}
	}) {
		contents = append(contents, &files.Content{Source: d[dst], Destination: dst, FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: mtime}})
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: "troupe", Arch: arch, Platform: "linux",
		Version: version, VersionSchema: "none",
		Section: "admin", Priority: "optional",
		Maintainer: maintainer, Homepage: homepage, Description: pkgDesc,
		MTime:           mtime,
		DisableGlobbing: true,
		Overridables:    nfpm.Overridables{Contents: contents},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("deb %s: %w", arch, err)
	}
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("deb %s: %w", arch, err)
	}
	return path, f.Close()
}

// writeSums writes `sha256sum -c` lines for the files, by base name (run
// the check in the directory).
func writeSums(path string, outputs []string) error {
	var b strings.Builder
	slices.Sort(outputs)
	for _, p := range outputs {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.Base(p))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
