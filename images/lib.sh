# Shared helpers for the image build scripts. Sourced, not run.
# Every image goes to $COLDPATCH_IMAGE_CACHE/<name>-<hash>/ (default ~/.cache/coldpatch/images),
# keyed by the hash of its script and this file, so CI rebuilds only when a script changes.
set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE_ROOT=${COLDPATCH_IMAGE_CACHE:-$HOME/.cache/coldpatch/images}
export SOURCE_DATE_EPOCH=1767225600   # 2026-01-01: stable timestamps in what we create
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
      | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# image_dir NAME SCRIPT -> prints the cache directory for this version of the script.
image_dir() {
  local h
  h=$(cat "$2" "$IMAGES_DIR/lib.sh" | sha256sum | cut -c1-12)
  echo "$CACHE_ROOT/$1-$h"
}

# fs_oracle ROOT OUT: the true file list of a tree, from find and sha256sum.
# Columns: path type mode uid gid size mtime link-target (find -printf), then a
# separate sha256 list for regular files.
fs_oracle() {
  local root=$1 out=$2
  (cd "$root" && find . -mindepth 1 -printf '/%P\t%y\t%m\t%U\t%G\t%s\t%Ts\t%l\n' | LC_ALL=C sort) > "$out/files.tsv"
  (cd "$root" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sed 's#  \./#\t/#') > "$out/sha256.tsv"
}

# dpkg_oracle ROOT OUT: installed packages as dpkg-query reports them.
dpkg_oracle() {
  dpkg-query --admindir="$1/var/lib/dpkg" -W \
    -f='${Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' \
    | awk -F'\t' '$1 ~ / installed$/ {print $2"\t"$3"\t"$4"\t"$5"\t"$6}' | LC_ALL=C sort > "$2/packages.tsv"
}

# make_ext4 ROOT IMG [EXTRA_MB]: an ext4 filesystem filled from ROOT without mounting.
make_ext4() {
  local root=$1 img=$2 extra=${3:-64} kb
  kb=$(du -sk "$root" | cut -f1)
  rm -f "$img"
  truncate -s $(( (kb * 13 / 10) / 1024 + extra ))M "$img"
  mkfs.ext4 -q -F -L root -U 6f6c6463-7061-7463-6800-000000000001 -E hash_seed=6f6c6463-7061-7463-6800-000000000002 \
    -d "$root" "$img"
  # mkfs.ext4 -d leaves large directories unindexed; a kernel-written root (dir_index is on
  # by default) has them hash-indexed. Index them so the image looks like a real system.
  # e2fsck exits 1 when it changed something, which is the point here.
  e2fsck -fyD "$img" >/dev/null 2>&1 || [ $? -le 1 ]
}

# gpt_disk FS_IMG DISK: a GPT disk with a BIOS-boot partition, a swap partition and the root
# filesystem third, so that the root must be found by content, not by position or name.
gpt_disk() {
  local fs=$1 disk=$2 fs_sectors
  fs_sectors=$(( $(stat -c %s "$fs") / 512 ))
  rm -f "$disk"
  truncate -s $(( (2048 + 2048 + 16384 + fs_sectors + 2048) * 512 )) "$disk"
  sfdisk -q "$disk" <<SF
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="bios"
start=4096, size=16384, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
start=20480, size=$fs_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
SF
  dd if="$fs" of="$disk" bs=512 seek=20480 conv=notrunc,sparse status=none
}

# mbr_disk FS_IMG DISK: an MBR disk whose root is a logical partition inside an extended one.
mbr_disk() {
  local fs=$1 disk=$2 fs_sectors
  fs_sectors=$(( $(stat -c %s "$fs") / 512 ))
  rm -f "$disk"
  truncate -s $(( (2048 + 16384 + 2048 + fs_sectors + 2048) * 512 )) "$disk"
  sfdisk -q "$disk" <<SF
label: dos
start=2048, size=16384, type=82
start=18432, type=5
start=20480, size=$fs_sectors, type=83
SF
  dd if="$fs" of="$disk" bs=512 seek=20480 conv=notrunc,sparse status=none
}

# debootstrap_root SUITE ROOT [INCLUDES]
debootstrap_root() {
  local suite=$1 root=$2 inc=${3:-}
  rm -rf "$root"
  debootstrap --variant=minbase ${inc:+--include="$inc"} "$suite" "$root" "$(debian_mirror)" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log" >&2; return 1; }
  # Drop what differs run to run and is not part of a real system's inventory.
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/log/bootstrap.log"
}

# finish OUTDIR: atomically publish a built image directory.
finish() {
  local tmp=$1 out=$2
  rm -rf "$out"
  mv "$tmp" "$out"
  echo "$out"
}
