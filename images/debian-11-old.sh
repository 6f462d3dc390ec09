#!/usr/bin/env bash
# debian-11-old: bullseye minbase (stale packages for vulnerability and patch tests) on an
# MBR disk whose root is a logical partition, as qcow2. Oracles: packages.tsv, files.tsv,
# sha256.tsv. Prints the output directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir debian-11-old "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
debootstrap_root bullseye root
echo "coldpatch-old" > root/etc/hostname
dpkg_oracle root .
fs_oracle root .
make_ext4 root fs.img
mbr_disk fs.img disk.raw
qemu-img convert -O qcow2 disk.raw disk.qcow2
rm -rf root fs.img disk.raw
touch done
finish "$tmp" "$out"
