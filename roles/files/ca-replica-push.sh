#!/bin/sh
# Managed by troupe (role ca-replica): push the CA directory to the standby
# CA as one tar stream, again while the directory changed during the push,
# and record what was pushed. Run by troupe-ca-replica.service, which the
# path unit starts on every change of the CA's serial, inventory, CRL or
# certificate, and the timer 30 s after each run (a push that failed, e.g.
# while the standby was down, is retried; one with nothing new exits at once).
set -eu
conf=/etc/troupe/ca-replica
. "$conf/env" # CADIR, STANDBY
state=/var/lib/troupe/ca-replica.state
# what a push carries that matters: the serial, the inventory, the CRL and
# the CA certificate (a signing changes the first two, a revocation the CRL)
sum() { (cd "$CADIR" && cat serial inventory.txt ca_crl.pem ca_crt.pem 2>/dev/null) | cksum | cut -d' ' -f1; }
last=$(sed -n 's/^sum=//p' "$state" 2>/dev/null || true)
[ "$(sum)" != "$last" ] || exit 0
for try in 1 2 3 4 5; do
	before=$(sum)
	# -F none: root's ssh_config has no say; the key alone, the standby's
	# host key pinned (written by troupe from its verified connection)
	tar -C "$CADIR" -czf - . | ssh -F none -i "$conf/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
		-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$conf/known_hosts" \
		-o ConnectTimeout=10 -o ServerAliveInterval=10 "troupe-replica@$STANDBY" receive
	after=$(sum)
	if [ "$before" = "$after" ]; then
		mkdir -p "${state%/*}"
		printf 'pushed=%s\nsum=%s\nserial=%s\n' "$(date +%s)" "$after" "$(cat "$CADIR/serial")" >"$state.new"
		mv "$state.new" "$state"
		exit 0
	fi
	echo "the CA directory changed during push $try; pushing again" >&2
done
echo "the CA directory changed during each of 5 pushes; the next change or the timer pushes again" >&2
exit 1
