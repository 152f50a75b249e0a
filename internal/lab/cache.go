package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// mirror is the Debian mirror the cache is built from (override with
// TROUPE_LAB_MIRROR). Only the cache build talks to it; lab hosts never do.
func mirror() string {
	if m := os.Getenv("TROUPE_LAB_MIRROR"); m != "" {
		return strings.TrimRight(m, "/")
	}
	return "http://deb.debian.org/debian"
}

// suiteCache is CacheDir/<suite>: rootfs/ (+ rootfs.done) and repo/{debian,upgrade} (+ repo.done).
type suiteCache struct {
	dir   string
	suite string
}

func (c suiteCache) rootfs() string { return filepath.Join(c.dir, "rootfs") }
func (c suiteCache) repo() string   { return filepath.Join(c.dir, "repo") }

// rootfsDone: the rootfs was built with the base packages in force now
// (rootfs.done holds their digest; a rootfs from before systemd booted the
// hosts is rebuilt).
func (c suiteCache) rootfsDone() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "rootfs.done"))
	return err == nil && strings.Contains(string(b), "base "+rootfsKey()+"\n")
}

func rootfsKey() string {
	sum := sha256.Sum256([]byte(fmt.Sprint(basePackages, "no policy-rc.d")))
	return hex.EncodeToString(sum[:8])
}
func (c suiteCache) logf(n string) string { return filepath.Join(c.dir, n+".log") }

// repoDone: the repository was built from the package lists in force now.
// repo.done holds their digest, so a change to packages.go rebuilds the
// repository on the next up instead of serving a stale one.
func (c suiteCache) repoDone() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "repo.done"))
	return err == nil && strings.Contains(string(b), "lists "+c.repoKey()+"\n")
}

// repoKey is a digest of what the repository must hold.
func (c suiteCache) repoKey() string {
	// The rootfs's key too: packages are resolved against the bare rootfs.
	sum := sha256.Sum256([]byte(fmt.Sprint(rolePackages[c.suite], upgradePackages, upgradeSuffix, rootfsKey())))
	return hex.EncodeToString(sum[:8])
}

// BuildCache builds the cache of s.Suite (rootfs and package repository)
// if it is missing, without starting a lab: for warming CI caches.
func BuildCache(ctx context.Context, s Spec, log io.Writer) error {
	s = s.Defaults()
	if err := s.validate(); err != nil {
		return err
	}
	if err := CheckHost(); err != nil {
		return err
	}
	_, err := ensureCache(ctx, s.CacheDir, s.Suite, log)
	return err
}

// ensureCache builds (once) the rootfs and the package repository of a suite.
// Both are built in *.tmp and renamed into place, then marked with *.done.
// Concurrent builders of the same cache serialize on CacheDir/<suite>.lock.
func ensureCache(ctx context.Context, cacheDir, suite string, log io.Writer) (suiteCache, error) {
	c := suiteCache{dir: filepath.Join(cacheDir, suite), suite: suite}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return c, err
	}
	if c.rootfsDone() && c.repoDone() {
		return c, nil
	}
	unlock, err := flock(filepath.Join(cacheDir, suite+".lock"), true)
	if err != nil {
		return c, err
	}
	defer unlock()
	if !c.rootfsDone() {
		t0 := time.Now()
		logf(log, "cache %s: building rootfs (debootstrap + base packages; about a minute)", suite)
		if err := c.buildRootfs(ctx); err != nil {
			return c, fmt.Errorf("building %s rootfs: %w", suite, err)
		}
		logf(log, "cache %s: rootfs built in %.1fs (%s)", suite, time.Since(t0).Seconds(), duSize(c.rootfs()))
	}
	if !c.repoDone() {
		t0 := time.Now()
		logf(log, "cache %s: building package repository (downloading Puppet stack; a minute or two)", suite)
		if err := c.buildRepo(ctx, log); err != nil {
			return c, fmt.Errorf("building %s package repository: %w", suite, err)
		}
		logf(log, "cache %s: repository built in %.1fs (%s)", suite, time.Since(t0).Seconds(), duSize(c.repo()))
	}
	return c, nil
}

func (c suiteCache) buildRootfs(ctx context.Context) error {
	tmp := c.rootfs() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	logFile, err := os.Create(c.logf("rootfs"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--keyring=/usr/share/keyrings/debian-archive-keyring.gpg", c.suite, tmp, mirror())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s: %v (see %s)", c.suite, err, logFile.Name())
	}
	sec := strings.TrimSuffix(mirror(), "/debian") + "/debian-security"
	files := map[string]string{
		"etc/apt/sources.list": fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n",
			mirror(), c.suite, mirror(), c.suite, sec, c.suite),
		// Hosts keep this: no Recommends (as the Puppet roles are meant to be
		// installed), and no date checks on the local repository.
		"etc/apt/apt.conf.d/90lab": "Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\n" +
			"Acquire::Languages \"none\";\nAPT::Install-Recommends \"false\";\n",
		// While the rootfs is built in a chroot, package scripts start no
		// daemon (sshd would start in the chroot). Removed at the end: on a
		// lab host, as on a site, systemd starts what a package's scripts
		// start (haproxy, postgresql) and leaves what they leave.
		"usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
	}
	for p, content := range files {
		if err := writeFile(filepath.Join(tmp, p), content, 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(tmp, "usr/sbin/policy-rc.d"), 0o755); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(tmp, "etc/apt/sources.list.d"))
	os.MkdirAll(filepath.Join(tmp, "etc/apt/sources.list.d"), 0o755)
	if err := c.chroot(ctx, tmp, nil, logFile, map[string]string{"BASE_PACKAGES": strings.Join(basePackages, " ")},
		"bash", "-c", scriptRootfsSetup); err != nil {
		return fmt.Errorf("base packages: %v (see %s)", err, logFile.Name())
	}
	// The lab sets sources.list per host (local repository only); no
	// nameserver, so nothing inside a host resolves outside names.
	if err := writeFile(filepath.Join(tmp, "etc/apt/sources.list"), "# written per host by troupe lab\n", 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(tmp, "usr/sbin/policy-rc.d")); err != nil {
		return err
	}
	os.Remove(filepath.Join(tmp, "etc/resolv.conf"))
	if err := writeFile(filepath.Join(tmp, "etc/resolv.conf"), "options timeout:1 attempts:1\n", 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(c.rootfs()); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.rootfs()); err != nil {
		return err
	}
	return writeFile(filepath.Join(c.dir, "rootfs.done"), time.Now().UTC().Format(time.RFC3339)+"\nbase "+rootfsKey()+"\n", 0o644)
}

// chroot runs argv chrooted into dir (see scripts/chroot.sh). With ovl =
// {lower, upper, work}, dir is an overlay mounted just for this run.
func (c suiteCache) chroot(ctx context.Context, dir string, ovl []string, out io.Writer, env map[string]string, argv ...string) error {
	args := []string{"--mount", "--propagation", "private", "--pid", "--fork", "--", "bash", "-c", scriptChroot, "chroot.sh", dir}
	args = append(args, ovl...)
	args = append(args, "--")
	if len(env) > 0 {
		args = append(args, "/usr/bin/env")
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, k+"="+env[k])
		}
	}
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func (c suiteCache) buildRepo(ctx context.Context, log io.Writer) error {
	tmp := c.repo() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	defer os.RemoveAll(tmp + "-ovl")
	logFile, err := os.Create(c.logf("repo"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	ovl := tmp + "-ovl"
	os.RemoveAll(ovl)
	for _, d := range []string{"upper", "work", "mnt"} {
		if err := os.MkdirAll(filepath.Join(ovl, d), 0o755); err != nil {
			return err
		}
	}
	sec := strings.TrimSuffix(mirror(), "/debian") + "/debian-security"
	if err := writeFile(filepath.Join(ovl, "upper/etc/apt/sources.list"),
		fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n",
			mirror(), c.suite, mirror(), c.suite, sec, c.suite), 0o644); err != nil {
		return err
	}
	sets := rolePackages[c.suite]
	var setStrs []string
	for _, s := range sets {
		setStrs = append(setStrs, strings.Join(s, " "))
	}
	err = c.chroot(ctx, filepath.Join(ovl, "mnt"),
		[]string{c.rootfs(), filepath.Join(ovl, "upper"), filepath.Join(ovl, "work")},
		logFile, map[string]string{"PKGSETS": strings.Join(setStrs, ";")}, "bash", "-c", scriptRepoDownload)
	if err != nil {
		return fmt.Errorf("apt-get --download-only: %v (see %s)", err, logFile.Name())
	}
	debs, _ := filepath.Glob(filepath.Join(ovl, "upper/var/cache/apt/archives/*.deb"))
	if len(debs) == 0 {
		return fmt.Errorf("no packages downloaded (see %s)", logFile.Name())
	}
	main := filepath.Join(tmp, "debian")
	if err := os.MkdirAll(main, 0o755); err != nil {
		return err
	}
	for _, d := range debs {
		if err := os.Rename(d, filepath.Join(main, filepath.Base(d))); err != nil {
			return err
		}
	}
	logf(log, "cache %s: %d packages downloaded", c.suite, len(debs))
	if err := indexRepo(ctx, main); err != nil {
		return err
	}
	// The upgrade repository: rebuilt copies with a bumped version.
	up := filepath.Join(tmp, "upgrade")
	if err := os.MkdirAll(up, 0o755); err != nil {
		return err
	}
	for _, p := range upgradePackages {
		if err := bumpPackage(ctx, main, up, p, logFile); err != nil {
			return fmt.Errorf("upgrade copy of %s: %w", p, err)
		}
	}
	if err := indexRepo(ctx, up); err != nil {
		return err
	}
	if err := os.RemoveAll(c.repo()); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.repo()); err != nil {
		return err
	}
	return writeFile(filepath.Join(c.dir, "repo.done"), time.Now().UTC().Format(time.RFC3339)+"\nlists "+c.repoKey()+"\n", 0o644)
}

// bumpPackage copies package pkg from src into dst with upgradeSuffix
// appended to its version: dpkg-deb -R, edit DEBIAN/control, dpkg-deb -b.
func bumpPackage(ctx context.Context, src, dst, pkg string, out io.Writer) error {
	debs, _ := filepath.Glob(filepath.Join(src, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("expected one %s_*.deb in %s, found %d", pkg, src, len(debs))
	}
	work, err := os.MkdirTemp(dst, ".bump-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	if err := run(ctx, out, "dpkg-deb", "-R", debs[0], tree); err != nil {
		return err
	}
	ctl := filepath.Join(tree, "DEBIAN/control")
	b, err := os.ReadFile(ctl)
	if err != nil {
		return err
	}
	var version, arch string
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			version = v + upgradeSuffix
			lines[i] = "Version: " + version
		}
		if v, ok := strings.CutPrefix(l, "Architecture: "); ok {
			arch = v
		}
	}
	if version == "" {
		return fmt.Errorf("no Version in %s", ctl)
	}
	if err := os.WriteFile(ctl, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return err
	}
	name := fmt.Sprintf("%s_%s_%s.deb", pkg, strings.ReplaceAll(version, ":", "%3a"), arch)
	return run(ctx, out, "dpkg-deb", "-Zgzip", "-z1", "--root-owner-group", "-b", tree, filepath.Join(dst, name))
}

// indexRepo writes Packages, Packages.gz and an unsigned Release for a flat
// repository (`deb [trusted=yes] URL ./`).
func indexRepo(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pkgs, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("dpkg-scanpackages in %s: %v: %s", dir, err, stderr.String())
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(pkgs)
	zw.Close()
	var rel strings.Builder
	fmt.Fprintf(&rel, "Origin: troupe-lab\nLabel: troupe-lab\nDate: %s\n", time.Now().UTC().Format(time.RFC1123))
	files := []struct {
		name string
		data []byte
	}{{"Packages", pkgs}, {"Packages.gz", gz.Bytes()}}
	rel.WriteString("MD5Sum:\n")
	for _, f := range files {
		s := md5.Sum(f.data)
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(s[:]), len(f.data), f.name)
	}
	rel.WriteString("SHA256:\n")
	for _, f := range files {
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(s[:]), len(f.data), f.name)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "Release"), []byte(rel.String()), 0o644)
}
