#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, after seeding corpora from real
# inputs: tiny images made with qemu-img/sfdisk, and the peers' databases when ../shared is
# there (copied into the git-ignored corpus, never committed).
# Needs cargo-fuzz; the stable toolchain is used with RUSTC_BOOTSTRAP=1. (The seeding
# pipelines end in `|| true`: `head` closing early is not a failure under pipefail.)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
peers=${COLDPATCH_PEERS:-../../shared/testdata/peers}
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/{qcow2,partitions,dpkg_status,apk_installed,rpmdb,ext4raw,feeds}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
qemu-img create -q -f qcow2 "$t/a.qcow2" 1M && head -c 65536 "$t/a.qcow2" > corpus/qcow2/empty-v3
qemu-img create -q -f qcow2 -o compat=0.10 "$t/b.qcow2" 1M && head -c 65536 "$t/b.qcow2" > corpus/qcow2/empty-v2
truncate -s 4M "$t/g.raw" && printf 'label: gpt\nstart=2048\n' | sfdisk -q "$t/g.raw" && head -c 65536 "$t/g.raw" > corpus/partitions/gpt
truncate -s 4M "$t/m.raw" && printf 'label: dos\nstart=2048,size=2048,type=83\nstart=4096,type=5\nstart=6144,size=1024,type=83\n' | sfdisk -q "$t/m.raw" \
  && head -c $((3200*512)) "$t/m.raw" | tail -c +1 > corpus/partitions/mbr-logical
mkdir -p "$t/tree/etc" && echo hello > "$t/tree/etc/hello" && truncate -s 2M "$t/e.img" \
  && mkfs.ext4 -q -F -d "$t/tree" "$t/e.img" && cp "$t/e.img" corpus/ext4raw/small-ext4
mkfs.ext2 -q -F -d "$t/tree" "$t/e.img" && cp "$t/e.img" corpus/ext4raw/small-ext2
if [ -d "$peers" ]; then
  find "$peers/dpkg" -path '*status*' -type f -size -200k | head -40 | while read -r f; do cp "$f" "corpus/dpkg_status/$(echo "$f" | sha1sum | cut -c1-12)"; done || true
  find "$peers/apk" -name installed -o -name single -o -name base | head -20 | while read -r f; do [ -f "$f" ] && cp "$f" "corpus/apk_installed/$(echo "$f" | sha1sum | cut -c1-12)"; done || true
  cp "$peers/rpmdb/go-rpmdb/libuuid/Packages" corpus/rpmdb/bdb-libuuid
  cp "$peers/rpmdb/go-rpmdb/sle15-bci/Packages.db" corpus/rpmdb/ndb-sle15
  cp "$peers/rpmdb/go-rpmdb/blob.bin" corpus/rpmdb/blob
  find "$peers/vuln" \( -name '*.json' -o -name '*.yaml' \) -size -200k | head -60 | while read -r f; do cp "$f" "corpus/feeds/$(echo "$f" | sha1sum | cut -c1-12)"; done || true
fi
cp ../tests/data/feeds/debian-tracker.json ../tests/data/feeds/osv/*.json corpus/feeds/
for target in qcow2 partitions dpkg_status apk_installed rpmdb ext4raw feeds; do
  echo "== $target ($secs s)"
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=2097152 2>&1 | tail -n 3
done
