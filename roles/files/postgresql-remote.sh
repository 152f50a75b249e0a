# postgresql-remote.sh HOSTCERT HOSTKEY CACERT "CERTNAME..." — let the
# PuppetDBs named (by their Puppet certnames) reach database puppetdb over
# the network, idempotent: TLS with this host's Puppet certificate, every
# client's certificate verified against the Puppet CA, and a login as
# puppetdb or puppetdb_read only with a certificate whose name is mapped
# (pg_hba "cert", pg_ident): the documented set-up,
# https://www.puppet.com/docs/puppetdb/8/postgres_ssl.html. Files are
# replaced whole (a temporary file, then mv), never through a link.
# Prints CHANGED when it changed something, RESTART when PostgreSQL must
# restart to see it (listen_addresses, max_connections), else a reload is enough.
set -eu
cert=$1 key=$2 cacert=$3 names=$4
# Each PuppetDB holds up to 50 connections (its write and read pools, 25
# each by default: maximum-pool-size, https://www.puppet.com/docs/puppetdb/8/configure.html);
# PostgreSQL's default max_connections (100) is two PuppetDBs' worth.
set -- $names
max_connections=$(( 50 * $# + 20 ))
changed= restart=
note() { changed=1; echo "CHANGED: $*"; }

# Debian's cluster (pg_lsclusters: version, name, ...): its configuration
# lives in /etc/postgresql/VERSION/NAME, which includes conf.d.
set -- $(pg_lsclusters -h | head -n1)
etc=/etc/postgresql/$1/$2
[ -d "$etc/conf.d" ] || { echo "no $etc/conf.d: not Debian's PostgreSQL layout" >&2; exit 1; }

# replace FILE MODE OWNER: stdin becomes FILE when it differs.
replace() {
  new=$(mktemp "$(dirname "$1")/.troupe-XXXXXX")
  cat >"$new"
  if cmp -s "$new" "$1" && [ "$(stat -c '%a %U' "$1")" = "$2 $3" ]; then
    rm -f "$new"; return 1
  fi
  chmod "$2" "$new"; chown "$3:$3" "$new"; mv -f "$new" "$1"
  note "$1"
}

d=/etc/postgresql/troupe-tls
install -d -o postgres -g postgres -m 0700 "$d"
replace "$d/server.crt" 644 postgres <"$cert" || true
replace "$d/server.key" 600 postgres <"$key" || true
replace "$d/ca.crt" 644 postgres <"$cacert" || true

replace "$etc/conf.d/troupe.conf" 644 postgres <<CONF && restart=1 || true
# Managed by troupe (role postgresql): the PuppetDBs on other hosts connect
# over TLS with their Puppet certificates (pg_hba.conf, pg_ident.conf).
listen_addresses = '*'
max_connections = $max_connections
ssl = on
ssl_cert_file = '$d/server.crt'
ssl_key_file = '$d/server.key'
ssl_ca_file = '$d/ca.crt'
CONF

# block FILE: FILE with troupe's block (stdin) in place of the old one, at
# its end (pg_hba.conf is read top down; Debian's own lines match only
# local sockets and loopback addresses).
block() {
  { sed '/^# BEGIN troupe$/,/^# END troupe$/d' "$1"; echo '# BEGIN troupe'; cat; echo '# END troupe'; } |
    replace "$1" 640 postgres || true
}
block "$etc/pg_hba.conf" <<HBA
# the PuppetDBs, by their Puppet certificates only (role postgresql)
hostssl puppetdb puppetdb,puppetdb_read 0.0.0.0/0 cert map=troupe-puppetdb
hostssl puppetdb puppetdb,puppetdb_read ::/0 cert map=troupe-puppetdb
HBA
for n in $names; do
  printf 'troupe-puppetdb %s puppetdb\ntroupe-puppetdb %s puppetdb_read\n' "$n" "$n"
done | block "$etc/pg_ident.conf"

[ -z "$restart" ] || echo "RESTART"
[ -n "$changed" ] || echo "PostgreSQL's remote access up to date"
