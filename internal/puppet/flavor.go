// Package puppet holds what troupe knows about the Puppet flavors it builds
// sites with: Debian's own packages and the vendor (all-in-one) packages of
// OpenVox 8, Puppet 8 and Puppet 7. Roles read these facts as .flavor in
// their templates; wherever a host can say a path itself (`puppet config
// print`), the roles ask the host and use these values only as defaults.
//
// Sources: for the vendor packages and layout, the OpenVox install page
// (voxpupuli/voxpupuli.github.io openvox/install.md) and OpenVoxProject/
// openvox-docs docs/_openvox-server_8x/install_what_and_where.md; for r10k
// per Ruby, puppetlabs/r10k's README.mkd and r10k.gemspec; for Debian's
// layout as installed, docs/lab.md. Only the debian flavor has been proven on
// real packages (lab: bookworm = Puppet 7, trixie = Puppet 8); the vendor
// columns come from those documents and are unit-tested here, not run.
package puppet

import (
	"fmt"
	"sort"
	"strings"
)

// Flavor is one column of the matrix.
type Flavor struct {
	Name   string // debian | openvox8 | puppet8 | puppet7
	Layout string // "debian" (/etc/puppet, /usr/bin) or "aio" (/etc/puppetlabs, /opt/puppetlabs)
	Major  int    // Puppet major version; 0 when the OS release decides (debian: 7 on bookworm, 8 on trixie)
	Proven bool   // run for real on these packages in the lab

	Packages Packages
	Bin      Binaries
	Paths    Paths
	Services Services
	R10k     R10k
	Release  Release // the vendor's release package (repository); empty for debian
}

// Packages are the package names per role.
type Packages struct {
	Agent   string // every node
	Server  string // CA and compilers
	DB      string // PuppetDB host
	Termini string // PuppetDB termini, on every puppetserver
}

// Binaries are absolute paths: the vendor bin dir is missing from non-login
// SSH and sudo's secure_path (the install docs say to add it to PATH or call
// binaries by full path), so roles never rely on PATH.
type Binaries struct {
	Dir          string
	Puppet       string
	Puppetserver string
	PuppetDB     string
	Ruby         string // the Ruby that runs the agent (for version checks)
	Gem          string // the agent Ruby's gem (puppet_gem); "" when the OS Ruby is used
}

// Paths are the defaults of each layout; roles prefer `puppet config print`.
type Paths struct {
	Confdir       string // puppet.conf, puppetdb.conf, routes.yaml
	Codedir       string
	Ssldir        string
	ServerConfdir string // puppetserver's conf.d/ and services.d/
	Cadir         string // default; Debian's is [U] in the reference: read it from the host
	ServerVardir  string
	ServerLogdir  string
	ServerEnvFile string // JAVA_ARGS (Debian/Ubuntu; EL uses /etc/sysconfig/puppetserver)
	PDBConfdir    string // PuppetDB's conf.d/ lives below it
	PDBVardir     string
	PDBEnvFile    string
	R10kConfdir   string
	R10kConfig    string
}

// Services are the service names (OpenVox kept the old ones: openvox/install.md).
type Services struct {
	Server string
	DB     string
	Agent  string
}

// R10k says how r10k gets onto a server (puppetlabs/r10k README.mkd; r10k 5
// needs Ruby >= 3.1, r10k.gemspec).
type R10k struct {
	Method  string // "package" (the OS package, OS Ruby) or "puppet_gem" (the agent's bundled Ruby)
	Package string // package or gem name
	Version string // gem version requirement for puppet_gem ("" = newest)
	Bin     string
}

// Release is the vendor repository's release package (puppet8-release,
// openvox8-release: see openvox/install.md). DebURL is
// expanded by a shell after `. /etc/os-release` (VERSION_CODENAME for
// apt.puppet.com, ID+VERSION_ID such as debian12 for apt.voxpupuli.org).
type Release struct {
	Package  string
	DebURL   string
	RPMURL   string // $MAJOR = the EL major version
	ListFile string // what the release package installs (its presence = installed)
}

var debian = Flavor{
	Name: "debian", Layout: "debian", Proven: true,
	Packages: Packages{Agent: "puppet-agent", Server: "puppetserver", DB: "puppetdb", Termini: "puppet-terminus-puppetdb"},
	Bin: Binaries{Dir: "/usr/bin", Puppet: "/usr/bin/puppet", Puppetserver: "/usr/bin/puppetserver",
		PuppetDB: "/usr/sbin/puppetdb", Ruby: "/usr/bin/ruby"},
	Paths: Paths{
		Confdir: "/etc/puppet", Codedir: "/etc/puppet/code", Ssldir: "/var/lib/puppet/ssl",
		ServerConfdir: "/etc/puppet/puppetserver", Cadir: "/etc/puppet/puppetserver/ca",
		ServerVardir: "/var/lib/puppetserver", ServerLogdir: "/var/log/puppetserver",
		ServerEnvFile: "/etc/default/puppetserver",
		PDBConfdir:    "/etc/puppetdb", PDBVardir: "/var/lib/puppetdb", PDBEnvFile: "/etc/default/puppetdb",
		R10kConfdir: "/etc/puppetlabs/r10k", R10kConfig: "/etc/puppetlabs/r10k/r10k.yaml",
	},
	Services: Services{Server: "puppetserver", DB: "puppetdb", Agent: "puppet"},
	// Debian's r10k runs on the OS Ruby: 3.15 on bookworm (Ruby 3.1), 5.0 on trixie (Ruby 3.3).
	R10k: R10k{Method: "package", Package: "r10k", Bin: "/usr/bin/r10k"},
}

// aio builds a vendor column: every vendor flavor shares the AIO layout.
func aio(name string, major int, pkgs Packages, release Release, r10kVersion string) Flavor {
	return Flavor{
		Name: name, Layout: "aio", Major: major,
		Packages: pkgs,
		Bin: Binaries{Dir: "/opt/puppetlabs/bin", Puppet: "/opt/puppetlabs/bin/puppet",
			Puppetserver: "/opt/puppetlabs/bin/puppetserver", PuppetDB: "/opt/puppetlabs/bin/puppetdb",
			Ruby: "/opt/puppetlabs/puppet/bin/ruby", Gem: "/opt/puppetlabs/puppet/bin/gem"},
		Paths: Paths{
			Confdir: "/etc/puppetlabs/puppet", Codedir: "/etc/puppetlabs/code", Ssldir: "/etc/puppetlabs/puppet/ssl",
			ServerConfdir: "/etc/puppetlabs/puppetserver", Cadir: "/etc/puppetlabs/puppetserver/ca",
			ServerVardir: "/opt/puppetlabs/server/data/puppetserver", ServerLogdir: "/var/log/puppetlabs/puppetserver",
			ServerEnvFile: "/etc/default/puppetserver",
			PDBConfdir:    "/etc/puppetlabs/puppetdb", PDBVardir: "/opt/puppetlabs/server/data/puppetdb",
			PDBEnvFile:  "/etc/default/puppetdb",
			R10kConfdir: "/etc/puppetlabs/r10k", R10kConfig: "/etc/puppetlabs/r10k/r10k.yaml",
		},
		Services: Services{Server: "puppetserver", DB: "puppetdb", Agent: "puppet"},
		// Into the agent's bundled Ruby, never `puppetserver gem`, which is the
		// server's JRuby (puppetlabs/r10k README.mkd).
		R10k:    R10k{Method: "puppet_gem", Package: "r10k", Version: r10kVersion, Bin: "/opt/puppetlabs/puppet/bin/r10k"},
		Release: release,
	}
}

func puppetRelease(major int) Release {
	n := fmt.Sprintf("puppet%d-release", major)
	return Release{Package: n,
		DebURL:   "https://apt.puppet.com/" + n + "-${VERSION_CODENAME}.deb",
		RPMURL:   "https://yum.puppet.com/" + n + "-el-${MAJOR}.noarch.rpm",
		ListFile: "/etc/apt/sources.list.d/" + n + ".list"}
}

var flavors = map[string]Flavor{
	"debian": debian,
	// OpenVox renamed the packages, not the services or paths (openvox/install.md).
	// Its apt suites are debian12/ubuntu24.04, not codenames (OpenVoxProject/
	// openvox-release source/apt/openvox8-release.list.template).
	"openvox8": aio("openvox8", 8,
		Packages{Agent: "openvox-agent", Server: "openvox-server", DB: "openvoxdb", Termini: "openvoxdb-termini"},
		Release{Package: "openvox8-release",
			DebURL:   "https://apt.voxpupuli.org/openvox8-release-${ID}${VERSION_ID}.deb",
			RPMURL:   "https://yum.voxpupuli.org/openvox8-release-el-${MAJOR}.noarch.rpm",
			ListFile: "/etc/apt/sources.list.d/openvox8-release.list"},
		"~> 5.0"),
	"puppet8": aio("puppet8", 8,
		Packages{Agent: "puppet-agent", Server: "puppetserver", DB: "puppetdb", Termini: "puppetdb-termini"},
		puppetRelease(8), "~> 5.0"),
	// r10k 5 needs Ruby >= 3.1 (r10k.gemspec); Puppet 7's agent Ruby is 2.7, so
	// 4.1.0, as voxpupuli/puppet-r10k pins for Puppet 7 (manifests/params.pp).
	"puppet7": aio("puppet7", 7,
		Packages{Agent: "puppet-agent", Server: "puppetserver", DB: "puppetdb", Termini: "puppetdb-termini"},
		puppetRelease(7), "4.1.0"),
}

// FlavorNames lists the known flavors, sorted.
func FlavorNames() []string {
	out := make([]string, 0, len(flavors))
	for n := range flavors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns the flavor with this name.
func Get(name string) (Flavor, error) {
	f, ok := flavors[name]
	if !ok {
		return Flavor{}, fmt.Errorf("unknown flavor %q (want one of %s)", name, strings.Join(FlavorNames(), ", "))
	}
	return f, nil
}

// Lookup is the flavor a host's vars.flavor names; nil for an empty name (a
// plan that never reads the flavor needs none).
func Lookup(name string) (*Flavor, error) {
	if name == "" {
		return nil, nil
	}
	f, err := Get(name)
	if err != nil {
		return nil, fmt.Errorf("vars.flavor: %w", err)
	}
	return &f, nil
}

// Data is the flavor as a host's .flavor in templates, with lower-case
// snake_case keys, e.g. .flavor.packages.server, .flavor.bin.puppet,
// .flavor.paths.confdir, .flavor.r10k.method. No flavor gives an empty
// .flavor: a template that reads it fails on the missing key, naming it.
func (f *Flavor) Data() map[string]any {
	if f == nil {
		return map[string]any{}
	}
	return f.Map()
}

// Map is the flavor as template data.
func (f Flavor) Map() map[string]any {
	return map[string]any{
		"name":   f.Name,
		"layout": f.Layout,
		"major":  f.Major,
		"proven": f.Proven,
		"aio":    f.Layout == "aio",
		"packages": map[string]any{
			"agent": f.Packages.Agent, "server": f.Packages.Server, "db": f.Packages.DB, "termini": f.Packages.Termini,
		},
		"bin": map[string]any{
			"dir": f.Bin.Dir, "puppet": f.Bin.Puppet, "puppetserver": f.Bin.Puppetserver,
			"puppetdb": f.Bin.PuppetDB, "ruby": f.Bin.Ruby, "gem": f.Bin.Gem,
		},
		"paths": map[string]any{
			"confdir": f.Paths.Confdir, "codedir": f.Paths.Codedir, "ssldir": f.Paths.Ssldir,
			"server_confdir": f.Paths.ServerConfdir, "cadir": f.Paths.Cadir,
			"server_vardir": f.Paths.ServerVardir, "server_logdir": f.Paths.ServerLogdir,
			"server_env_file": f.Paths.ServerEnvFile,
			"pdb_confdir":     f.Paths.PDBConfdir, "pdb_vardir": f.Paths.PDBVardir, "pdb_env_file": f.Paths.PDBEnvFile,
			"r10k_confdir": f.Paths.R10kConfdir, "r10k_config": f.Paths.R10kConfig,
		},
		"services": map[string]any{"server": f.Services.Server, "db": f.Services.DB, "agent": f.Services.Agent},
		"r10k": map[string]any{
			"method": f.R10k.Method, "package": f.R10k.Package, "version": f.R10k.Version, "bin": f.R10k.Bin,
		},
		"release": map[string]any{
			"package": f.Release.Package, "deb_url": f.Release.DebURL, "rpm_url": f.Release.RPMURL,
			"list_file": f.Release.ListFile,
		},
	}
}

// PartNames are the parts of a site a package can be named by (plans'
// `parts:`), each the package the flavor gives it.
var PartNames = []string{"server", "agent", "termini", "db"}

// Part is the package that is part name of a site in this flavor.
func (p Packages) Part(name string) (string, bool) {
	switch name {
	case "server":
		return p.Server, p.Server != ""
	case "agent":
		return p.Agent, p.Agent != ""
	case "termini":
		return p.Termini, p.Termini != ""
	case "db":
		return p.DB, p.DB != ""
	}
	return "", false
}
