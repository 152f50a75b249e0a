# puppetdb-database.sh [DATABASE_INI] — PuppetDB's PostgreSQL side, idempotent:
# roles puppetdb (writer) and puppetdb_read (reader), database puppetdb with
# the documented grants and the pg_trgm extension (required; OpenVoxProject/
# openvox-docs docs/_openvoxdb_8x/configure_postgres.markdown),
# and, given DATABASE_INI (PuppetDB on this host), database.ini for PuppetDB.
# Passwords are generated here on the first
# run and kept in database.ini (0640 root:puppetdb), where the operator finds
# them; they are never printed, never on a command line (SQL goes on stdin).
# Without DATABASE_INI the roles get no password: PuppetDBs on other hosts
# log in with their certificates (postgresql-remote.sh).
# Prints CHANGED when it changed something.
set -eu
ini=${1:-}
umask 077
changed=
note() { changed=1; echo "CHANGED: $*"; }
psql_pg() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# The password of an ini section, if database.ini already has one.
getpw() { [ -r "$ini" ] && sed -n "/^\[$1\]/,/^\[/{s/^[[:space:]]*password[[:space:]]*=[[:space:]]*//p}" "$ini" | head -n1; true; }
newpw() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

# Roles: created once; the password set when it does not log in.
for r in puppetdb puppetdb_read; do
  if [ "$(psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$r'")" != 1 ]; then
    psql_pg -c "CREATE ROLE $r LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
    note "role $r created"
  fi
done
login_ok() { # USER PASSWORD (via a 0600 passfile, not the environment or argv)
  pf=$(mktemp)
  printf '127.0.0.1:5432:puppetdb:%s:%s\n' "$1" "$2" >"$pf"
  PGPASSFILE=$pf psql -X -q -w -h 127.0.0.1 -U "$1" -d puppetdb -tAc 'SELECT 1' >/dev/null 2>&1 && rc=0 || rc=1
  rm -f "$pf"
  return $rc
}
if [ "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = 'puppetdb'")" != 1 ]; then
  runuser -u postgres -- createdb -E UTF8 -O postgres puppetdb
  note "database puppetdb created"
fi
# Documented set-up (openvoxdb configure_postgres): the writer may end the
# reader's queries during partition GC; the reader reads what the writer makes.
if [ "$(psql_pg -d puppetdb -tAc "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")" != 1 ]; then
  psql_pg -d puppetdb <<'SQL'
GRANT puppetdb_read TO puppetdb;
REVOKE CREATE ON SCHEMA public FROM public;
GRANT CREATE ON SCHEMA public TO puppetdb;
ALTER DEFAULT PRIVILEGES FOR USER puppetdb IN SCHEMA public GRANT SELECT ON TABLES TO puppetdb_read;
ALTER DEFAULT PRIVILEGES FOR USER puppetdb IN SCHEMA public GRANT USAGE ON SEQUENCES TO puppetdb_read;
ALTER DEFAULT PRIVILEGES FOR USER puppetdb IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO puppetdb_read;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
  note "grants and pg_trgm in database puppetdb"
fi
if [ -z "$ini" ]; then
  [ -n "$changed" ] || echo "PuppetDB database up to date"
  exit 0
fi
pw=$(getpw database); [ -n "$pw" ] || pw=$(newpw)
rpw=$(getpw read-database); [ -n "$rpw" ] || rpw=$(newpw)
for pair in "puppetdb:$pw" "puppetdb_read:$rpw"; do
  u=${pair%%:*} p=${pair#*:}
  if ! login_ok "$u" "$p"; then
    psql_pg <<SQL
ALTER ROLE $u WITH LOGIN PASSWORD '$p';
SQL
    note "password of $u set"
  fi
done

want=$(cat <<INI
# Managed by troupe (role puppetdb). The passwords were generated on this
# host on the first run; PostgreSQL has the same ones.
[database]
subname = //127.0.0.1:5432/puppetdb
username = puppetdb
password = $pw

[read-database]
subname = //127.0.0.1:5432/puppetdb
username = puppetdb_read
password = $rpw
INI
)
if [ "$(cat "$ini" 2>/dev/null)" != "$want" ] || [ "$(stat -c '%a %U %G' "$ini")" != "640 root puppetdb" ]; then
  printf '%s\n' "$want" >"$ini.troupe-new"
  chown root:puppetdb "$ini.troupe-new"
  chmod 0640 "$ini.troupe-new"
  mv "$ini.troupe-new" "$ini"
  note "$ini written"
fi
[ -n "$changed" ] || echo "PuppetDB database up to date"
