package lab

// basePackages are installed into the cached rootfs on top of debootstrap's
// minbase: what a bare lab host has before troupe touches it. systemd is its
// init (systemd-nspawn boots it as the host's PID 1); dbus is what systemctl
// and logind talk over.
var basePackages = []string{
	"openssh-server", "sudo", "curl", "ca-certificates", "procps", "iproute2", "less",
	"systemd", "systemd-sysv", "dbus",
}

// rolePackages is what the local package repository must hold, per suite:
// every package troupe's Puppet roles install, resolved (with all
// dependencies, no Recommends) against the bare rootfs. Each inner slice is
// also resolved on its own, so installing one role's set on a bare host never
// needs a package that only the whole-list resolution left out.
//
// Notes: Debian's postgresql-NN ships the contrib extensions (pg_trgm
// included) in the server package itself; postgresql-contrib is only a
// metapackage pulling postgresql-contrib-NN -> postgresql-NN, kept so a role
// that names it still installs. augeas-tools is what `puppetdb ssl-setup`
// needs (a Recommends of puppetdb).
var rolePackages = map[string][][]string{
	// bookworm: Puppet 7 (puppetserver 7.9.5, puppetdb 7.12.1, puppet-agent 7.23), PostgreSQL 15, haproxy 2.6.
	"bookworm": {
		{"puppetserver", "puppet-terminus-puppetdb", "r10k", "git"},                                                  // ca, compilers
		{"puppetdb", "puppet-terminus-puppetdb", "postgresql", "postgresql-contrib", "puppet-agent", "augeas-tools"}, // puppetdb
		{"haproxy", "socat", "keepalived"},                                                                           // loadbalancer (keepalived: two of them, lb_vip)
		{"puppet-agent"},                                                                                             // agents
		{"curl", "openssl", "ruby", "git", "jq"},                                                                     // tools the plans may use anywhere
	},
	// trixie: Puppet 8 (puppetserver 8.7.0, puppetdb 8.4.1, puppet-agent 8.10), PostgreSQL 17, haproxy 3.0.
	"trixie": {
		{"puppetserver", "puppet-terminus-puppetdb", "r10k", "git"},
		{"puppetdb", "puppet-terminus-puppetdb", "postgresql", "postgresql-contrib", "puppet-agent", "augeas-tools"},
		{"haproxy", "socat", "keepalived"},
		{"puppet-agent"},
		{"curl", "openssl", "ruby", "git", "jq"},
	},
}

// upgradePackages get a rebuilt copy with a bumped version (+troupe1) in the
// upgrade repository, so a rolling upgrade really changes versions: the
// servers, the agent, PuppetDB and its termini (upgraded together, as
// Puppet's upgrade docs ask).
var upgradePackages = []string{"puppetserver", "puppet-agent", "puppetdb", "puppet-terminus-puppetdb"}

// upgradeSuffix is appended to the Debian version of upgradePackages.
const upgradeSuffix = "+troupe1"
