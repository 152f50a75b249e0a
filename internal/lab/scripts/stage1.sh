#!/bin/bash
# stage1.sh SHORT HOSTDIR LOWER
# PID 1 of a new lab host's namespaces (mount, uts, ipc, net, pid), still
# seeing the runner's filesystem. Mounts the host's overlay root, /proc,
# /sys, /dev, /run; copies HOSTDIR/files over the root (hostname, hosts,
# SSH host keys, authorized_keys, apt sources, lab-init, systemctl); then
# pivot_root's into it and execs /sbin/lab-init.
set -eu
NAME=$1 HD=$2 LOWER=$3
M=$HD/merged
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$HD/upper,workdir=$HD/work" "$M"
mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
mount -t sysfs -o nosuid,nodev,noexec,ro sysfs "$M/sys"
mount -t tmpfs -o nosuid,mode=755,size=64k tmpfs "$M/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r n ma mi <<<"$d"; mknod -m 666 "$M/dev/$n" c "$ma" "$mi"
done
mkdir -p "$M/dev/pts" "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"; ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"; ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$M/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=755,size=256m tmpfs "$M/run"
# per-host files, written through the overlay (they land in the upper dir)
cp -a "$HD/files/." "$M/"
# cp -a gave /home/lab the runner's (root's) ownership: hand the home back
# to its user, or nothing it runs can write there (~/.cache, ~/.ssh).
chown 1000:1000 "$M/home/lab"
chown -R 1000:1000 "$M/home/lab/.ssh"
rm -f "$M"/etc/apt/sources.list.d/*
hostname "$NAME"
cd "$M"; mkdir -p .oldroot; pivot_root . .oldroot
cd /; umount -l /.oldroot; rmdir /.oldroot
exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /usr/sbin/lab-init
