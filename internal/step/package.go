package step

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/report"
)

// Package installs, upgrades or removes packages with apt or dnf, with an
// optional version pin. Only what differs is touched.
type Package struct {
	Names []string `yaml:"names"`
	// Parts adds the flavor's packages by part, each with its version.
	Parts Parts `yaml:"parts"`
	// ForGroups adds names by inventory group: a host installs those of
	// every group it is in, besides Names, so one step installs each tier's
	// packages on all hosts at once. A name that renders empty is left out.
	ForGroups map[string][]string `yaml:"for_groups"`
	State     string              `yaml:"state"`   // present (default) | latest | absent
	Version   string              `yaml:"version"` // pin every name to this version (apt: name=version, dnf: name-version)
	// Versions pins single names (name → version; keys and values are
	// templates); an empty value leaves that name to state and version.
	Versions    map[string]string `yaml:"versions"`
	UpdateCache bool              `yaml:"update_cache"`
	// DownloadOnly fetches what an install or upgrade would, into the
	// package cache, and changes nothing: the slow part of an upgrade done
	// before a service stops, so its downtime is dpkg's and the restart's.
	DownloadOnly bool `yaml:"download_only"`
	// HoldRestarts keeps the packages' maintainer scripts from starting,
	// stopping or restarting services while apt runs (see policyRC): the
	// plan restarts them itself afterwards, once. apt only.
	HoldRestarts bool `yaml:"hold_restarts"`
}

func (p *Package) Title() string {
	if len(p.ForGroups) > 0 {
		return "Packages of each host's groups " + p.state()
	}
	what := strings.Join(p.Names, " ")
	if len(p.Parts) > 0 {
		what = strings.TrimSpace(what + " " + p.Parts.partList())
	}
	return fmt.Sprintf("Package %s %s", what, p.state())
}

func (p *Package) state() string {
	if p.State == "" {
		return "present"
	}
	return p.State
}

func (p *Package) Validate() error {
	if len(p.Names) == 0 && len(p.ForGroups) == 0 && len(p.Parts) == 0 {
		return errors.New("names: at least one package is required (or parts, or for_groups)")
	}
	if err := p.Parts.validate(); err != nil {
		return err
	}
	switch p.state() {
	case "present", "latest", "upgraded", "absent":
	default:
		return fmt.Errorf("state %q: want present, latest, upgraded or absent", p.State)
	}
	if (p.Version != "" || len(p.Versions) > 0 || p.Parts.pinned()) && p.state() == "absent" {
		return errors.New("version makes no sense with state absent")
	}
	if p.DownloadOnly && p.state() == "absent" {
		return errors.New("download_only makes no sense with state absent")
	}
	if p.HoldRestarts && (p.state() == "absent" || p.DownloadOnly) {
		return errors.New("hold_restarts is for an install or upgrade, not with state absent or download_only")
	}
	return nil
}

// apt runs non-interactively, keeps changed config files (an operator's edits
// survive an upgrade) and waits for a held dpkg lock instead of failing.
const aptGet = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 " +
	"-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

func (p *Package) Run(ctx context.Context, x *Exec) (r Result, err error) {
	names, err := p.names(x)
	if err != nil {
		return Result{}, err
	}
	if len(names) == 0 {
		return Result{Msg: "no packages for this host's groups"}, nil
	}
	versions, err := p.pins(x, names)
	if err != nil {
		return Result{}, err
	}
	mgr, err := x.MustProbe(ctx, "if command -v apt-get >/dev/null; then echo apt; elif command -v dnf >/dev/null; then echo dnf; else echo yum; fi")
	if err != nil {
		return Result{}, err
	}
	apt := strings.TrimSpace(mgr.Stdout) == "apt"
	if p.UpdateCache && apt {
		if _, err := x.MustChange(ctx, aptGet+" update", ""); err != nil {
			return Result{}, err
		}
	}
	installed, err := p.installed(ctx, x, apt, names)
	if err != nil {
		return Result{}, err
	}
	var todo []string
	for _, n := range names {
		have, ok := installed[n]
		version := versions[n]
		switch {
		case p.state() == "absent":
			if ok {
				todo = append(todo, n)
			}
		case p.state() == "upgraded" && !ok:
			// an upgrade never installs what the host does not have
		case version != "":
			if have != version {
				todo = append(todo, pin(apt, n, version))
			}
		case p.state() == "present":
			if !ok {
				todo = append(todo, n)
			}
		default: // latest, upgraded: let the package manager decide, see below
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 {
		return Result{Msg: "already " + p.state()}, nil
	}
	quoted := make([]string, len(todo))
	for i, t := range todo {
		quoted[i] = render.ShellQuote(t)
	}
	args := strings.Join(quoted, " ")
	if p.DownloadOnly {
		return p.download(ctx, x, apt, args)
	}
	var cmd string
	switch {
	case apt && p.state() == "absent":
		cmd = aptGet + " remove " + args
	case apt:
		cmd = aptGet + " install --allow-downgrades " + args
	case p.state() == "absent":
		cmd = "dnf -y remove " + args
	case p.state() == "latest":
		cmd = "dnf -y install " + args + " && dnf -y upgrade " + args
	case p.state() == "upgraded":
		cmd = "dnf -y upgrade " + args
	default:
		cmd = "dnf -y install " + args
	}
	var held string
	if p.HoldRestarts && !apt {
		held = "hold_restarts: apt only, restarts not held"
	}
	if p.HoldRestarts && apt && !x.Noop {
		release, msg, herr := holdRestarts(ctx, x)
		if herr != nil {
			return Result{}, herr
		}
		held = msg
		defer func() { // err is Run's result: a failed removal fails the step
			if rerr := release(); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}()
	}
	res, err := x.MustChange(ctx, cmd, "")
	if err != nil {
		return commandResult(res, true), err
	}
	if held != "" {
		defer func() { r.Msg += "; " + held }()
	}
	if (p.state() == "latest" || p.state() == "upgraded") && !x.Noop {
		// latest is a change only when a version moved.
		after, err := p.installed(ctx, x, apt, names)
		if err != nil {
			return Result{}, err
		}
		changed := false
		for _, n := range names {
			changed = changed || after[n] != installed[n]
		}
		return Result{Changed: changed, Stdout: res.Stdout, Msg: p.state()}, nil
	}
	return Result{Changed: true, Stdout: res.Stdout, Msg: strings.Join(todo, " ")}, nil
}

// names are Names and the ForGroups lists of the host's groups, rendered,
// without empty names and repeats, in that order (groups sorted).
func (p *Package) names(x *Exec) ([]string, error) {
	all := append([]string(nil), p.Names...)
	groups := make([]string, 0, len(p.ForGroups))
	for g := range p.ForGroups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		if slices.Contains(x.Groups[g], x.Host.Name) {
			all = append(all, p.ForGroups[g]...)
		}
	}
	rendered, err := x.RenderAll(all)
	if err != nil {
		return nil, err
	}
	parts, err := p.Parts.resolve(x)
	if err != nil {
		return nil, err
	}
	for _, pt := range parts {
		rendered = append(rendered, pt.pkg)
	}
	var out []string
	for _, n := range rendered {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// download fetches the packages an install or upgrade of args would bring
// into the package cache: no change on the host (its packages are as they
// were), so never reported as one.
func (p *Package) download(ctx context.Context, x *Exec, apt bool, args string) (Result, error) {
	cmd := "dnf -y install --downloadonly " + args
	switch {
	case apt:
		cmd = aptGet + " install --download-only --allow-downgrades " + args
	case p.state() == "upgraded":
		cmd = "dnf -y upgrade --downloadonly " + args
	}
	if x.Noop {
		return Result{Msg: "would download " + args}, nil
	}
	res, err := x.MustProbe(ctx, cmd)
	if err != nil {
		return commandResult(res, false), err
	}
	return Result{Msg: "downloaded " + args}, nil
}

// pins maps each name to the version it must have ("" = none): Versions
// first, then Version.
func (p *Package) pins(x *Exec, names []string) (map[string]string, error) {
	all, err := x.Render(p.Version)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		out[n] = all
	}
	parts, err := p.Parts.resolve(x)
	if err != nil {
		return nil, err
	}
	for _, pt := range parts {
		if pt.version != "" {
			out[pt.pkg] = pt.version
		}
	}
	for k, v := range p.Versions {
		name, err := x.Render(k)
		if err != nil {
			return nil, err
		}
		if v, err = x.Render(v); err != nil {
			return nil, err
		}
		if v != "" {
			out[name] = v
		}
	}
	return out, nil
}

// installed maps each installed package to its version.
func (p *Package) installed(ctx context.Context, x *Exec, apt bool, names []string) (map[string]string, error) {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = render.ShellQuote(n)
	}
	cmd := "rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' " + strings.Join(q, " ") + " 2>/dev/null | grep -v 'not installed'; true"
	if apt {
		cmd = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' " + strings.Join(q, " ") + " 2>/dev/null; true"
	}
	res, err := x.MustProbe(ctx, cmd)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(res.Stdout, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || (apt && (len(f) < 3 || f[2] != "ii")) {
			continue
		}
		out[f[0]] = f[1]
	}
	return out, nil
}

func pin(apt bool, name, version string) string {
	if apt {
		return name + "=" + version
	}
	return name + "-" + version
}

// policyRC is Debian's policy layer for maintainer scripts: invoke-rc.d
// and deb-systemd-invoke ask /usr/sbin/policy-rc.d before they start,
// stop or restart a service, and exit status 101 means "action forbidden
// by policy" (invoke-rc.d(8), section INIT SCRIPT POLICY;
// /usr/share/doc/init-system-helpers/README.policy-rc.d). The first line
// after the shebang marks it as troupe's, so a copy left by a run that
// died mid-step is known as ours and removed by the next one.
const (
	policyRC       = "/usr/sbin/policy-rc.d"
	policyRCMarker = "# troupe hold_restarts: services held for one package step, removed after it"
	policyRCBody   = "#!/bin/sh\n" + policyRCMarker + "\nexit 101\n"
)

// holdRestarts puts troupe's policy-rc.d in place for an install, unless
// the operator has one (theirs is kept, and the install runs under their
// policy). It is written to a temporary file and linked into place, which
// fails when anything, a symlink included, holds the name: nothing is
// overwritten and no symlink followed. release removes it (only troupe's)
// even when the step's context was cancelled.
func holdRestarts(ctx context.Context, x *Exec) (release func() error, msg string, err error) {
	q := render.ShellQuote(policyRC)
	probe := "if [ -L " + q + " ] || [ -e " + q + " ]; then if [ ! -L " + q + " ] && grep -qxF " + render.ShellQuote(policyRCMarker) + " " + q +
		"; then echo ours; else echo theirs; fi; else echo none; fi"
	res, err := x.MustProbe(ctx, probe)
	if err != nil {
		return nil, "", fmt.Errorf("hold_restarts: %w", err)
	}
	switch strings.TrimSpace(res.Stdout) {
	case "theirs":
		x.Emit(report.Event{Kind: report.Warning, Host: x.Host.Name, Text: policyRC + " is the host's own: kept, restarts not held by troupe"})
		return func() error { return nil }, policyRC + " is the host's own: kept, restarts not held", nil
	case "none":
		write := "t=$(mktemp " + render.ShellQuote(path.Dir(policyRC)+"/.policy-rc.d.troupe.XXXXXX") + ") && printf %s " + render.ShellQuote(policyRCBody) +
			" > \"$t\" && chmod 0755 \"$t\" && ln \"$t\" " + q + "; rc=$?; rm -f \"$t\"; exit $rc"
		if _, err := x.MustChange(ctx, write, ""); err != nil {
			return nil, "", fmt.Errorf("hold_restarts: write %s: %w", policyRC, err)
		}
	case "ours":
		// left by a run that died mid-step: in place already, removed below
	default:
		return nil, "", fmt.Errorf("hold_restarts: %s: unexpected answer %q", policyRC, res.Stdout)
	}
	release = func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		rm := "if [ ! -L " + q + " ] && grep -qxF " + render.ShellQuote(policyRCMarker) + " " + q + " 2>/dev/null; then rm -f " + q + "; fi"
		if _, err := x.MustChange(rctx, rm, ""); err != nil {
			return fmt.Errorf("hold_restarts: %s not removed, services on this host will not start from packages until it is: %w", policyRC, err)
		}
		return nil
	}
	return release, "restarts held during the install (" + policyRC + ")", nil
}
