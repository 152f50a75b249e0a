# Runs inside a throw-away overlay chroot of the cached rootfs: downloads
# (never installs) every package of the lab repository with its dependencies.
# $PKGSETS: sets separated by ';', names by spaces.
set -euo pipefail
apt-get update -q
all=""
IFS=';' read -ra sets <<<"$PKGSETS"
for s in "${sets[@]}"; do all="$all $s"; done
echo "== whole list:$all"
apt-get install -y -q --download-only $all
for s in "${sets[@]}"; do
  echo "== set: $s"
  apt-get install -y -q --download-only $s
done
ls /var/cache/apt/archives/*.deb | wc -l
