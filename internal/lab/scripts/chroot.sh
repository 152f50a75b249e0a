#!/bin/bash
# chroot.sh DIR [LOWER UPPER WORK] -- CMD...
# Runs CMD chrooted into DIR in a private mount+pid namespace of the root
# network namespace (the Debian mirror is reachable). With LOWER/UPPER/WORK,
# DIR is first mounted as an overlay (throw-away upper over the cached rootfs).
# Every mount dies with the namespace.
set -euo pipefail
d=$1; shift
if [ "$1" != -- ]; then
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$d"
  shift 3
fi
shift # --
mount -t proc proc "$d/proc"
mount -t sysfs sysfs "$d/sys"
mount --rbind /dev "$d/dev"
mount -t tmpfs tmpfs "$d/run"
mount -t tmpfs tmpfs "$d/tmp"
rm -f "$d/etc/resolv.conf"; touch "$d/etc/resolv.conf"
mount --bind /etc/resolv.conf "$d/etc/resolv.conf"
exec chroot "$d" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
