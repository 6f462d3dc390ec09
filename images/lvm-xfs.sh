#!/usr/bin/env bash
# lvm-xfs: bookworm minbase on XFS inside an LVM logical volume, made in the libguestfs
# appliance (no root mount on the host): the fallback path. Oracles: packages.tsv,
# files.tsv, sha256.tsv. Prints the output directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir lvm-xfs "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
debootstrap_root bookworm root
echo "coldpatch-lvm" > root/etc/hostname
dpkg_oracle root .
fs_oracle root .
tar --numeric-owner -C root -cf root.tar .
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
guestfish -N disk.raw=lvfs:/dev/VG/root:xfs:1G -m /dev/VG/root tar-in root.tar / : sync
qemu-img convert -O qcow2 disk.raw disk.qcow2
rm -rf root root.tar disk.raw
touch done
finish "$tmp" "$out"
