#!/bin/sh
# install-test-deps.sh: install (idempotently) the Debian packages the test
# suite needs. Runs `apt-get update` only when something is missing.
# Usage: sudo scripts/install-test-deps.sh [--bench]
#   --bench  also Ansible, which only the benchmark (just bench) compares with
set -eu

# gcc and libc6-dev: the race detector (just unit) needs cgo; strace: the
# proof that `troupe status` writes nothing on a host (sshtest.TraceSSHD,
# the e2e status scenario); openssl: the status tests read a real
# certificate as the probe does; zsh and fish: the completion tests run the
# scripts in the shells themselves
PKGS="openssh-server openssh-client sudo socat debootstrap git dpkg-dev curl iproute2 procps passwd gcc libc6-dev systemd-container strace openssl zsh fish"
if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS ansible"
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-test-deps.sh: must run as root (try: sudo $0)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps.sh: apt-get not found; this script supports Debian/Ubuntu only" >&2
	exit 1
fi

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "installed" ]; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-test-deps.sh: all packages present"
else
	echo "install-test-deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086 # word splitting is intended
	apt-get install -y -q --no-install-recommends $missing
fi

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd
# The Debian package enables and starts the system sshd where systemd runs;
# the tests start their own sshd on 127.0.0.1:<free port> and do not need it.
