#!/bin/sh
# Managed by troupe (role ca-standby). The one command the active CA's
# replication key may run on this host (a forced command in
# authorized_keys; what the client asks for is ignored): unpack the tar
# stream of the CA directory on stdin into a new snapshot, check that it is
# a whole CA directory, and only then make it the current one (a rename),
# so the current snapshot is never a half-written copy.
set -eu
umask 077
data=/var/lib/troupe-replica/data
new=$(mktemp -d "$data/snapshots/.incoming.XXXXXX")
trap 'rm -rf "$new"' EXIT
tar -xzf - -C "$new" --no-same-owner
for f in ca_crt.pem ca_key.pem serial inventory.txt ca_crl.pem; do
	[ -s "$new/$f" ] || {
		echo "the pushed CA directory has no $f: the current snapshot is kept" >&2
		exit 1
	}
done
snap=$data/snapshots/$(date -u +%Y%m%dT%H%M%S.%N)
mv "$new" "$snap"
trap - EXIT
ln -sfn "$snap" "$data/current.new"
mv -T "$data/current.new" "$data/current"
# the three newest snapshots are kept
ls -1d "$data"/snapshots/2* | head -n -3 | xargs -r rm -rf
echo "received serial $(cat "$snap/serial")"
