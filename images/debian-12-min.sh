#!/usr/bin/env bash
# debian-12-min: debootstrap bookworm minbase -> ext4 (mkfs.ext4 -d) -> GPT disk, as raw,
# qcow2, zlib- and zstd-compressed qcow2, and a qcow2 overlay (relative backing name) that
# changes a few files. Oracles: packages.tsv (dpkg-query), files.tsv + sha256.tsv (find),
# and overlay/files.tsv etc. for the overlay's view. Prints the output directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir debian-12-min "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"

debootstrap_root bookworm root
echo "coldpatch-min" > root/etc/hostname
dpkg_oracle root .
fs_oracle root .
make_ext4 root fs.img
gpt_disk fs.img disk.raw
qemu-img convert -O qcow2 disk.raw disk.qcow2
qemu-img convert -c -O qcow2 disk.raw disk-zlib.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd disk.raw disk-zstd.qcow2
qemu-img convert -O qcow2 -o compat=0.10 disk.raw disk-v2.qcow2

# The overlay: the same filesystem changed in place with debugfs (so only a few clusters
# differ), and the same changes applied to a copy of the tree for the oracle.
cp -a root root-mod
printf 'overlay=1\n' > root-mod/etc/coldpatch-overlay.conf
printf 'coldpatch-overlay\n' > root-mod/etc/hostname
rm root-mod/etc/motd
chmod 4755 root-mod/usr/bin/dpkg
touch -h -d @$SOURCE_DATE_EPOCH root-mod/etc/coldpatch-overlay.conf root-mod/etc/hostname root-mod/usr/bin/dpkg
chmod 644 root-mod/etc/coldpatch-overlay.conf root-mod/etc/hostname
touch -d @$SOURCE_DATE_EPOCH root-mod/etc
mkdir overlay
fs_oracle root-mod overlay
cp fs.img fs-mod.img
debugfs -w fs-mod.img -f - >/dev/null 2>&1 <<DBG
cd /etc
write root-mod/etc/coldpatch-overlay.conf coldpatch-overlay.conf
rm hostname
write root-mod/etc/hostname hostname
rm motd
sif /etc/coldpatch-overlay.conf mode 0100644
sif /etc/coldpatch-overlay.conf uid 0
sif /etc/coldpatch-overlay.conf gid 0
sif /etc/coldpatch-overlay.conf mtime @$SOURCE_DATE_EPOCH
sif /etc/hostname mode 0100644
sif /etc/hostname uid 0
sif /etc/hostname gid 0
sif /etc/hostname mtime @$SOURCE_DATE_EPOCH
sif /usr/bin/dpkg mode 0104755
sif /usr/bin/dpkg mtime @$SOURCE_DATE_EPOCH
sif /etc mtime @$SOURCE_DATE_EPOCH
DBG
gpt_disk fs-mod.img disk-mod.raw
qemu-img convert -O qcow2 disk-mod.raw mod.qcow2
qemu-img create -q -f qcow2 -b mod.qcow2 -F qcow2 overlay.qcow2
qemu-img rebase -q -b disk.qcow2 -F qcow2 overlay.qcow2
rm -rf mod.qcow2 disk-mod.raw fs-mod.img root-mod fs.img
cp packages.tsv overlay/packages.tsv
rm -rf root
touch done
finish "$tmp" "$out"
