package step

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/troupe/troupe/internal/render"
)

// PackageFacts reads, without changing anything, what an upgrade of the
// named packages that a host has installed would do there: the installed version, the versions the
// host's package source offers, the target (a pinned version or else the
// newest offered), whether the package is held, and whether moving to the
// target would be an upgrade or a downgrade. It registers one typed record
// per package plus `upgrade` (some package moves) and `problems` (reasons an
// upgrade must not start: target not offered, a hold, a downgrade), so plans
// branch on facts rather than on parsed command output.
type PackageFacts struct {
	Names []string `yaml:"names"`
	// Parts adds the flavor's packages by part, each with its target
	// version; their records are also under data.parts by part
	// (.registered.pkgs.parts.agent.target).
	Parts    Parts             `yaml:"parts"`
	Versions map[string]string `yaml:"versions"` // name → target version (templates); "" or absent = the newest offered
	// Refresh runs apt-get update first. It changes only the package
	// lists, never what is installed, so it runs under --noop too: a dry
	// run must show what the source offers now.
	Refresh bool `yaml:"refresh"`
}

func (p *PackageFacts) Title() string {
	return "Read package versions: " + strings.TrimSpace(strings.Join(p.Names, " ")+" "+p.Parts.partList())
}
func (p *PackageFacts) ReadOnly() bool { return true }

func (p *PackageFacts) Validate() error {
	if len(p.Names) == 0 && len(p.Parts) == 0 {
		return errors.New("names: at least one package is required (or parts)")
	}
	if err := p.Parts.validate(); err != nil {
		return err
	}
	for n := range p.Versions {
		if !slices.Contains(p.Names, n) && !strings.Contains(n, "{{") {
			return fmt.Errorf("versions: %q is not one of names", n)
		}
	}
	return nil
}

// packageFact is one package on one host.
type packageFact struct {
	Installed string   // "" when not installed
	Offered   []string // newest first
	Target    string
	Held      bool
	Upgrade   bool // installed and target is newer
	Downgrade bool // installed and target is older
}

// record is what PackageFacts registers per package (under data.packages).
func (f packageFact) record() map[string]any {
	return map[string]any{"installed": f.Installed, "offered": toAny(f.Offered), "target": f.Target,
		"held": f.Held, "upgrade": f.Upgrade, "downgrade": f.Downgrade}
}

func (p *PackageFacts) Run(ctx context.Context, x *Exec) (Result, error) {
	names, err := x.RenderAll(p.Names)
	if err != nil {
		return Result{}, err
	}
	parts, err := p.Parts.resolve(x)
	if err != nil {
		return Result{}, err
	}
	for _, pt := range parts {
		if !slices.Contains(names, pt.pkg) {
			names = append(names, pt.pkg)
		}
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = render.ShellQuote(n)
	}
	// One round trip: the lists refreshed, the policy table of every name,
	// then the holds.
	cmd := "command -v apt-cache >/dev/null || { echo 'package_facts: only apt (Debian, Ubuntu) is supported' >&2; exit 3; }; "
	if p.Refresh {
		cmd += "DEBIAN_FRONTEND=noninteractive apt-get -q update -o DPkg::Lock::Timeout=300 >&2 || exit; "
	}
	res, err := x.MustProbe(ctx, cmd+"LC_ALL=C apt-cache policy "+strings.Join(q, " ")+"; echo '#holds'; apt-mark showhold")
	if err != nil {
		return Result{}, err
	}
	policy, holds, _ := strings.Cut(res.Stdout, "#holds\n")
	facts := parseAptPolicy(policy)
	held := strings.Fields(holds)
	pins := map[string]string{}
	for k, v := range p.Versions {
		if k, err = x.Render(k); err != nil {
			return Result{}, err
		}
		if pins[k], err = x.Render(v); err != nil {
			return Result{}, err
		}
	}
	for _, pt := range parts {
		if pt.version != "" {
			pins[pt.pkg] = pt.version
		}
	}
	out := map[string]any{}
	var moves, problems []string
	for _, n := range names {
		f := facts[n]
		if f.Installed == "" {
			continue // only what the host has is upgraded
		}
		f.Held = slices.Contains(held, n)
		want := pins[n]
		switch {
		case want != "":
			f.Target = want
			if !slices.Contains(f.Offered, want) && want != f.Installed {
				problems = append(problems, fmt.Sprintf("%s %s is not offered by the package source (offered: %s)", n, want, strings.Join(f.Offered, ", ")))
			}
		case len(f.Offered) > 0:
			f.Target = f.Offered[0]
		default:
			f.Target = f.Installed
		}
		c := CompareDebVersions(f.Target, f.Installed)
		f.Upgrade, f.Downgrade = c > 0, c < 0
		if f.Downgrade {
			problems = append(problems, fmt.Sprintf("%s %s → %s would be a downgrade", n, f.Installed, f.Target))
		}
		if f.Upgrade {
			moves = append(moves, fmt.Sprintf("%s %s → %s", n, f.Installed, f.Target))
			if f.Held {
				problems = append(problems, n+" is held (apt-mark unhold "+n+" first)")
			}
		}
		out[n] = f.record()
	}
	msg := "up to date"
	if len(moves) > 0 {
		msg = strings.Join(moves, ", ")
	}
	byPart := map[string]any{}
	for _, pt := range parts {
		if rec, ok := out[pt.pkg].(map[string]any); ok {
			rec = maps.Clone(rec)
			rec["package"] = pt.pkg // which package the flavor makes that part
			byPart[pt.name] = rec
		}
	}
	return Result{Msg: msg, Data: map[string]any{
		"packages": out, "parts": byPart, "upgrade": len(moves) > 0, "moves": toAny(moves), "problems": toAny(problems),
	}}, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// parseAptPolicy reads `apt-cache policy NAME...`:
//
//	puppetserver:
//	  Installed: 7.9.5-2+deb12u1
//	  Candidate: 7.9.5-2+deb12u1+troupe1
//	  Version table:
//	     7.9.5-2+deb12u1+troupe1 500
//	        500 http://… ./ Packages
//	 *** 7.9.5-2+deb12u1 500
func parseAptPolicy(out string) map[string]packageFact {
	facts := map[string]packageFact{}
	var name string
	var f packageFact
	flush := func() {
		if name != "" {
			sort.Slice(f.Offered, func(i, j int) bool { return CompareDebVersions(f.Offered[i], f.Offered[j]) > 0 })
			facts[name] = f
		}
	}
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "":
		case !strings.HasPrefix(l, " ") && strings.HasSuffix(t, ":"):
			flush()
			name, f = strings.TrimSuffix(t, ":"), packageFact{}
		case strings.HasPrefix(t, "Installed: "):
			if v := strings.TrimPrefix(t, "Installed: "); v != "(none)" {
				f.Installed = v
			}
		case strings.HasPrefix(t, "Candidate: "), t == "Version table:":
		default:
			// A version line: "*** V PRIO" or "V PRIO"; a source line starts
			// with a priority number. The installed version is listed too
			// (from /var/lib/dpkg/status), so it counts as offered.
			fs := strings.Fields(strings.TrimPrefix(t, "*** "))
			if len(fs) == 2 && !isDigits(fs[0]) && !slices.Contains(f.Offered, fs[0]) {
				f.Offered = append(f.Offered, fs[0])
			}
		}
	}
	flush()
	return facts
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// CompareDebVersions compares two Debian versions ([epoch:]upstream[-revision])
// as dpkg does (deb-version(7)): -1, 0 or 1.
func CompareDebVersions(a, b string) int {
	ea, ua, ra := splitDebVersion(a)
	eb, ub, rb := splitDebVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := compareDebPart(ua, ub); c != 0 {
		return c
	}
	return compareDebPart(ra, rb)
}

func splitDebVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok && isDigits(e) {
		fmt.Sscan(e, &epoch)
		v = rest
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// compareDebPart alternates non-digit runs (compared by debOrder) and digit
// runs (compared as numbers).
func compareDebPart(a, b string) int {
	for a != "" || b != "" {
		var na, nb string
		na, a = spanNonDigits(a)
		nb, b = spanNonDigits(b)
		for i := 0; i < len(na) || i < len(nb); i++ {
			ca, cb := debOrder(na, i), debOrder(nb, i)
			if ca != cb {
				if ca < cb {
					return -1
				}
				return 1
			}
		}
		var da, db string
		da, a = spanDigits(a)
		db, b = spanDigits(b)
		da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
		if len(da) != len(db) {
			if len(da) < len(db) {
				return -1
			}
			return 1
		}
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

// debOrder: '~' sorts before everything, even the end of the part; letters
// before other characters.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return int(c)
	}
	return int(c) + 256
}

func spanNonDigits(s string) (string, string) {
	i := 0
	for i < len(s) && (s[i] < '0' || s[i] > '9') {
		i++
	}
	return s[:i], s[i:]
}

func spanDigits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}
