package status

import (
	"fmt"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/transport"
)

// The probe script prints one section per probe: a marker line naming it,
// the probe's output, and an end marker with its exit status. Nothing in it
// writes a file: every redirection goes to /dev/null or another descriptor
// (TestScriptWritesNothing checks this), and every network call is bounded
// (curl -m, socat -T, timeout) so a hung service cannot hold the host's row.
const (
	marker     = "@@troupe-status@@"
	pemMarker  = "@@pem@@"
	envMarker  = "@@env@@"
	httpMarker = "@@http@@"
)

// serverURLs are the Puppet Server status calls, in the order of the
// puppetserver section: simple, the critical services, JRuby metrics.
var serverURLs = []string{
	"https://127.0.0.1:8140/status/v1/simple",
	"'https://127.0.0.1:8140/status/v1/services?level=critical'",
	"'https://127.0.0.1:8140/status/v1/services/jruby-metrics?level=debug'",
}

// Roles, from the inventory's groups (see topology).
const (
	RoleCA       = "ca"
	RoleStandby  = "ca-standby"
	RoleCompiler = "compiler"
	RoleLB       = "lb"
	RolePuppetDB = "puppetdb"
	RoleDatabase = "pg" // PuppetDB's PostgreSQL (the site's database host)
	RoleAgent    = "agent"
)

// groupRoles maps the inventory groups the shipped plans target to roles.
var groupRoles = map[string]string{
	inventory.GroupCA: RoleCA, inventory.GroupCAStandby: RoleStandby, inventory.GroupCompilers: RoleCompiler, inventory.GroupLoadBalancer: RoleLB,
	inventory.GroupPuppetDB: RolePuppetDB, inventory.GroupPostgres: RoleDatabase, inventory.GroupAgents: RoleAgent,
}

// roleOrder is the order roles are listed in.
var roleOrder = []string{RoleCA, RoleStandby, RoleCompiler, RoleLB, RolePuppetDB, RoleDatabase, RoleAgent}

// Where the CA's pushes to the standby are recorded (roles/ca-replica.yaml)
// and where the standby keeps its current snapshot (roles/ca-standby.yaml).
const (
	ReplicaState = "/var/lib/troupe/ca-replica.state"
	// CAState is what plan ca-failover says of a CA host (roles: ca-standby).
	CAState        = "/etc/troupe/ca-state"
	ReplicaCurrent = "/var/lib/troupe-replica/data/current"
)

// DefaultSocket is HAProxy's admin socket (roles/haproxy.yaml lb_socket).
const DefaultSocket = "/run/haproxy/admin.sock"

// spec is what is probed on one host.
type spec struct {
	Certname string
	Roles    []string
	Flavor   puppet.Flavor
	Socket   string // HAProxy admin socket (lb role)
	VIP      string // lb_vip without its prefix length (lb role, two load balancers)
	Heads    bool   // git ls-remote the control repository (one compiler)
	Standby  bool   // the site has a standby CA the CA pushes to (ca role)
}

func (s spec) has(role string) bool { return slices.Contains(s.Roles, role) }

func (s spec) server() bool { return s.has(RoleCA) || s.has(RoleCompiler) }

// enrolled: the host's roles give it a Puppet certificate (the load
// balancer passes TLS through and has none).
func (s spec) enrolled() bool {
	return s.server() || s.has(RoleStandby) || s.has(RolePuppetDB) || s.has(RoleDatabase) || s.has(RoleAgent)
}

// services are the units a host of these roles must have active.
func (s spec) services() []string {
	var out []string
	if s.server() {
		out = append(out, s.Flavor.Services.Server)
	}
	if s.has(RolePuppetDB) {
		out = append(out, s.Flavor.Services.DB)
	}
	if s.has(RoleDatabase) {
		out = append(out, "postgresql")
	}
	if s.has(RoleLB) {
		out = append(out, "haproxy")
		if s.VIP != "" {
			out = append(out, "keepalived")
		}
	}
	return out
}

// packages are the packages a host of these roles must have installed,
// with the column label each is shown under.
func (s spec) packages() []pkgWant {
	var out []pkgWant
	p := s.Flavor.Packages
	if s.server() || s.has(RoleStandby) {
		out = append(out, pkgWant{"server", p.Server})
	}
	if s.has(RolePuppetDB) {
		out = append(out, pkgWant{"db", p.DB})
	}
	if s.enrolled() {
		out = append(out, pkgWant{"agent", p.Agent})
	}
	return out
}

type pkgWant struct{ Label, Name string }

// script is the one shell script run (through sudo) on the host.
func (s spec) script() string {
	q := transport.Quote
	f := s.Flavor
	ssl := f.Paths.Ssldir
	cert := ssl + "/certs/" + s.Certname + ".pem"
	key := ssl + "/private_keys/" + s.Certname + ".pem"
	var b strings.Builder
	b.WriteString(`LC_ALL=C; export LC_ALL
sec() { printf '\n` + marker + ` %s\n' "$1"; }
end() { printf '\n` + marker + ` end %s\n' "$1"; }
# eachpem FILE CMD...: CMD on every PEM block of FILE (a bundle holds several)
eachpem() {
  [ -r "$1" ] || { echo "cannot read $1" >&2; return 66; }
  f=$1; shift; buf=
  while IFS= read -r l; do
    buf="$buf$l
"
    case $l in "-----END "*) printf '%s' "$buf" | "$@" 2>&1; printf '` + pemMarker + `\n'; buf= ;; esac
  done < "$f"
}
`)
	fmt.Fprintf(&b, "cert=%s; key=%s\n", q(cert), q(key))
	b.WriteString(`# pcurl: curl to this host's puppetserver, with its own certificate when it has one
pcurl() {
  if [ -r "$cert" ] && [ -r "$key" ]; then curl -sk --connect-timeout 2 --cert "$cert" --key "$key" "$@"
  else curl -sk --connect-timeout 2 "$@"; fi
}
`)
	var pkgs []string
	for _, p := range []string{f.Packages.Server, f.Packages.Agent, f.Packages.DB} {
		pkgs = append(pkgs, q(p))
	}
	b.WriteString("sec pkg; dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' " + strings.Join(pkgs, " ") + " 2>/dev/null; end $?\n")
	if svcs := s.services(); len(svcs) > 0 {
		for i := range svcs {
			svcs[i] = q(svcs[i])
		}
		// one call, one line per unit in order; exit 3 when any is not active
		b.WriteString("sec svc; systemctl is-active " + strings.Join(svcs, " ") + " 2>&1; end $?\n")
	}
	if s.enrolled() {
		b.WriteString("sec cert; eachpem \"$cert\" openssl x509 -noout -serial -issuer -enddate -ext subjectAltName 2>&1; end $?\n")
	}
	if s.has(RoleCA) {
		fmt.Fprintf(&b, "sec cacert; eachpem %s openssl x509 -noout -subject -enddate 2>&1; end $?\n", q(ssl+"/certs/ca.pem"))
		fmt.Fprintf(&b, "sec crl; c=%s; [ -r \"$c\" ] || c=%s; eachpem \"$c\" openssl crl -noout -issuer -nextupdate 2>&1; end $?\n",
			q(f.Paths.Cadir+"/ca_crl.pem"), q(ssl+"/ca/ca_crl.pem"))
		// the CRL itself, for the serials it revokes (parsed here, not by openssl)
		b.WriteString("sec crlpem; cat \"$c\" 2>&1; end $?\n")
	}
	if s.has(RoleCA) && s.Standby {
		// the push's state, and what it would carry now (the same sum as
		// roles/files/ca-replica-push.sh)
		fmt.Fprintf(&b, `sec careplica; c=%s
sed -n 's/^\(pushed\|sum\|serial\)=/\1 /p' %s 2>/dev/null
printf 'now %%s\ncursum %%s\ncurserial %%s\n' "$(date +%%s)" "$( (cd "$c" && cat serial inventory.txt ca_crl.pem ca_crt.pem 2>/dev/null) | cksum | cut -d' ' -f1)" "$(cat "$c/serial" 2>/dev/null)"
printf 'changed %%s\n' "$(stat -c %%Y "$c/serial" "$c/inventory.txt" "$c/ca_crl.pem" "$c/ca_crt.pem" 2>/dev/null | sort -n | tail -n 1)"
printf 'watch %%s\nresult %%s\n' "$(systemctl is-active troupe-ca-replica.path 2>&1)" "$(systemctl show -P Result troupe-ca-replica.service 2>&1)"
sed -n 's/^state=/castate /p' %s 2>/dev/null; end 0
`, q(f.Paths.Cadir), q(ReplicaState), q(CAState))
	}
	if s.has(RoleStandby) {
		fmt.Fprintf(&b, `sec replica; d=%s
printf 'now %%s\nsnapshot %%s\nserial %%s\nserver %%s\n' "$(date +%%s)" "$(stat -c %%Y "$d" 2>/dev/null)" "$(cat "$d/serial" 2>/dev/null)" "$(systemctl is-active %s 2>&1)"
sed -n 's/^state=/castate /p' %s 2>/dev/null; end 0
`, q(ReplicaCurrent), q(f.Services.Server), q(CAState))
	}
	if s.server() {
		env := f.Paths.Codedir + "/environments"
		fmt.Fprintf(&b, `sec code; d=%s
if [ -d "$d" ]; then for e in "$d"/*/; do [ -d "$e" ] || continue; n=${e%%/}; printf '%s %%s\n' "${n##*/}"; cat "$e.r10k-deploy.json" 2>/dev/null; echo; done; else echo "no directory $d"; false; fi 2>&1; end $?
`, q(env), envMarker)
	}
	if s.has(RoleLB) {
		sock := q("unix-connect:" + s.Socket)
		fmt.Fprintf(&b, "sec lbstate; echo 'show servers state' | socat -T 3 stdio %s 2>&1; end $?\n", sock)
		fmt.Fprintf(&b, "sec lbstat; echo 'show stat' | socat -T 3 stdio %s 2>&1; end $?\n", sock)
		if s.VIP != "" {
			// a line when this host holds the address, none when not
			fmt.Fprintf(&b, "sec vip; ip -o -4 addr show to %s 2>&1; end $?\n", q(s.VIP+"/32"))
		}
	}
	// The network probes last, so a hung service costs only its own cells.
	if s.server() {
		// One curl for the three status calls of the JVM (one process, one
		// TLS connection); each answer is followed by its HTTP code and curl
		// exit code, and the first that fails to connect (refused, timeout)
		// ends the call.
		b.WriteString("sec puppetserver; pcurl -m 5 --fail-early -w '\\n" + httpMarker + " %{http_code} %{exitcode}\\n' " +
			strings.Join(serverURLs, " ") + " 2>&1; end $?\n")
	}
	if s.has(RolePuppetDB) {
		b.WriteString("sec pdbstatus; curl -s -m 3 --connect-timeout 2 -w '\\n%{http_code}' http://127.0.0.1:8080/status/v1/services/puppetdb-status 2>&1; rc=$?; end $rc\n")
		b.WriteString("[ $rc -ne 28 ] && { sec pdbnodes; curl -s -m 3 --connect-timeout 2 -w '\\n%{http_code}' -G http://127.0.0.1:8080/pdb/query/v4 " +
			"--data-urlencode 'query=nodes[certname, facts_timestamp, catalog_timestamp, report_timestamp] {}' 2>&1; end $?; }\n")
	}
	if s.Heads {
		fmt.Fprintf(&b, `sec heads; r=$(sed -n 's/^[[:space:]]*remote:[[:space:]]*//p' %s 2>/dev/null | head -n 1 | tr -d "\"'")
if [ -n "$r" ]; then printf 'remote %%s\n' "$r"; timeout 5 git ls-remote --heads "$r" 2>&1; else echo "no remote in %s"; false; fi; end $?
`, q(f.Paths.R10kConfig), f.Paths.R10kConfig)
	}
	return b.String()
}
