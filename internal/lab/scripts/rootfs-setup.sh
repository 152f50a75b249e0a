# Runs inside the chroot of a fresh debootstrap: base packages and user `lab`.
set -euo pipefail
apt-get update -q
apt-get -y -q dist-upgrade
apt-get install -y -q $BASE_PACKAGES
id lab >/dev/null 2>&1 || useradd -m -u 1000 -U -s /bin/bash -G sudo lab
usermod -p '*' lab                       # no password, but not locked: key login works
echo 'lab ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/lab
chmod 440 /etc/sudoers.d/lab
apt-get clean
rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
