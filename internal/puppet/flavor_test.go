package puppet

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/troupe/troupe/internal/render"
	"github.com/troupe/troupe/internal/testenv"
)

// TestMatrix pins the facts of every column (their sources are in the
// package comment).
func TestMatrix(t *testing.T) {
	tests := []struct {
		flavor, server, db, termini, agent, puppet, confdir, ssldir, r10kMethod, r10kVersion, release string
		major                                                                                         int
	}{
		{"debian", "puppetserver", "puppetdb", "puppet-terminus-puppetdb", "puppet-agent", "/usr/bin/puppet",
			"/etc/puppet", "/var/lib/puppet/ssl", "package", "", "", 0},
		{"openvox8", "openvox-server", "openvoxdb", "openvoxdb-termini", "openvox-agent", "/opt/puppetlabs/bin/puppet",
			"/etc/puppetlabs/puppet", "/etc/puppetlabs/puppet/ssl", "puppet_gem", "~> 5.0", "openvox8-release", 8},
		{"puppet8", "puppetserver", "puppetdb", "puppetdb-termini", "puppet-agent", "/opt/puppetlabs/bin/puppet",
			"/etc/puppetlabs/puppet", "/etc/puppetlabs/puppet/ssl", "puppet_gem", "~> 5.0", "puppet8-release", 8},
		{"puppet7", "puppetserver", "puppetdb", "puppetdb-termini", "puppet-agent", "/opt/puppetlabs/bin/puppet",
			"/etc/puppetlabs/puppet", "/etc/puppetlabs/puppet/ssl", "puppet_gem", "4.1.0", "puppet7-release", 7},
	}
	for _, tt := range tests {
		t.Run(tt.flavor, func(t *testing.T) {
			f, err := Get(tt.flavor)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{f.Packages.Server, f.Packages.DB, f.Packages.Termini, f.Packages.Agent, f.Bin.Puppet,
				f.Paths.Confdir, f.Paths.Ssldir, f.R10k.Method, f.R10k.Version, f.Release.Package}
			want := []string{tt.server, tt.db, tt.termini, tt.agent, tt.puppet, tt.confdir, tt.ssldir,
				tt.r10kMethod, tt.r10kVersion, tt.release}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("field %d: got %q, want %q", i, got[i], want[i])
				}
			}
			if f.Major != tt.major {
				t.Errorf("major %d, want %d", f.Major, tt.major)
			}
			// Services keep their names on every flavor (OpenVox too).
			if f.Services != (Services{Server: "puppetserver", DB: "puppetdb", Agent: "puppet"}) {
				t.Errorf("services %+v", f.Services)
			}
			if f.Proven != (tt.flavor == "debian") {
				t.Errorf("proven = %v", f.Proven)
			}
			if f.Layout == "aio" {
				for _, p := range []string{f.Bin.Puppet, f.Bin.Puppetserver, f.Bin.PuppetDB, f.Bin.Gem, f.R10k.Bin} {
					if !strings.HasPrefix(p, "/opt/puppetlabs/") {
						t.Errorf("aio binary %s outside /opt/puppetlabs", p)
					}
				}
				if f.Release.DebURL == "" || f.Release.ListFile == "" {
					t.Error("vendor flavor without a release package")
				}
			}
		})
	}
}

// TestReleaseURLs expands the release package URLs the way the role does.
func TestReleaseURLs(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		testenv.Skip(t, "no sh")
	}
	cases := map[string]string{
		"openvox8": "https://apt.voxpupuli.org/openvox8-release-debian12.deb",
		"puppet8":  "https://apt.puppet.com/puppet8-release-bookworm.deb",
		"puppet7":  "https://apt.puppet.com/puppet7-release-bookworm.deb",
	}
	for name, want := range cases {
		f, _ := Get(name)
		out, err := exec.Command("sh", "-c", `ID=debian VERSION_ID=12 VERSION_CODENAME=bookworm; echo "`+f.Release.DebURL+`"`).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	f, err := Lookup("openvox8")
	if err != nil {
		t.Fatal(err)
	}
	out, err := render.String("{{ .flavor.packages.server }} {{ .flavor.bin.puppet }} {{ .flavor.paths.confdir }} {{ .flavor.r10k.method }} {{ if .flavor.aio }}aio{{ end }}", map[string]any{"flavor": f.Data()})
	if err != nil {
		t.Fatal(err)
	}
	if out != "openvox-server /opt/puppetlabs/bin/puppet /etc/puppetlabs/puppet puppet_gem aio" {
		t.Errorf("rendered %q", out)
	}
	if _, err := Lookup("puppet6"); err == nil || !strings.Contains(err.Error(), "vars.flavor: unknown flavor \"puppet6\" (want one of debian, openvox8, puppet7, puppet8)") {
		t.Errorf("unknown flavor: %v", err)
	}
	if f, err := Lookup(""); err != nil || f != nil || len(f.Data()) != 0 {
		t.Errorf("no flavor: %v %v", f, err)
	}
}

// TestMapCoversFlavor: every field of Flavor reaches the templates. Map is
// written by hand, so a field added to a section and forgotten there fails
// here: each section of the map has as many keys as its struct has
// fields, and the top level as many plain fields plus the derived aio.
func TestMapCoversFlavor(t *testing.T) {
	m := debian.Map()
	ft := reflect.TypeFor[Flavor]()
	plain := 0
	for i := range ft.NumField() {
		f := ft.Field(i)
		if f.Type.Kind() != reflect.Struct {
			plain++
			continue
		}
		section, ok := m[strings.ToLower(f.Name)].(map[string]any)
		if !ok {
			t.Errorf("Map has no section %q for Flavor.%s", strings.ToLower(f.Name), f.Name)
			continue
		}
		if len(section) != f.Type.NumField() {
			t.Errorf("Map section %q has %d keys, Flavor.%s has %d fields", strings.ToLower(f.Name), len(section), f.Name, f.Type.NumField())
		}
	}
	if got := len(m) - (ft.NumField() - plain); got != plain+1 {
		t.Errorf("Map has %d plain keys, want Flavor's %d plain fields and aio", got, plain)
	}
}
