#!/usr/bin/env bash
# debian-12-server: bookworm with an ssh server, nginx, python3, curl, git, a compiler and
# friends (about 1 GB of content): the benchmark image. Keeps the extracted tree in root/
# so peer tools (trivy rootfs, syft dir:) can scan the same content. Prints the directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir debian-12-server "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
debootstrap_root bookworm root \
  systemd-sysv,openssh-server,nginx,python3,python3-pip,python3-venv,curl,wget,ca-certificates,git,vim-nox,less,rsync,sudo,cron,logrotate,gcc,g++,make,perl,locales,man-db,iproute2,openssl,gnupg
echo "coldpatch-server" > root/etc/hostname
dpkg_oracle root .
fs_oracle root .
make_ext4 root fs.img 256
gpt_disk fs.img disk.raw
qemu-img convert -O qcow2 disk.raw disk.qcow2
rm -f fs.img disk.raw
touch done
finish "$tmp" "$out"
