#!/usr/bin/env bash
# hostile.sh OUT: makes hostile images in OUT from the real test images (debian-12-min's
# root filesystem, rpm-sample's rpmdb): broken qcow2 headers and tables, compressed
# clusters that inflate past their cluster, backing loops and escapes, GPT and MBR tables
# that overlap, loop or reach past the disk, ext2/3/4 with broken superblocks, group
# descriptors, extent trees, block maps, directory loops and hard-link cycles, garbage
# dpkg/rpm/apk databases, guest symlink loops and symlinks aimed out of the guest.
# One file per case, named after it; OUT/cases.tsv lists "name<TAB>what it breaks".
# Used by tests/hostile (each must give a clear error or an inventory with unknowns).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
min=$(bash "$here/build.sh" debian-12-min | cut -d' ' -f2)
rpm=$(bash "$here/build.sh" rpm-sample | cut -d' ' -f2)
t=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-hostile.XXXXXX")
trap 'rm -rf "$t"' EXIT
: > "$out/cases.tsv"
case_() { printf '%s\t%s\n' "$1" "$2" >> "$out/cases.tsv"; }

# Bytes: put FILE OFFSET VALUE-AS-\x-ESCAPES (written in place).
put() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
hex_bytes() { # NBYTES VALUE ORDER(be|le) -> \x escapes
  local n=$1 v=$2 o=$3 s="" i b
  for ((i = 0; i < n; i++)); do
    b=$(( (v >> (8 * (o == 0 ? n - 1 - i : i))) & 0xff ))
    s+=$(printf '\\x%02x' "$b")
  done
  printf '%s' "$s"
}
be32() { hex_bytes 4 "$1" 0; }
be64() { hex_bytes 8 "$1" 0; }
le16() { hex_bytes 2 "$1" 1; }
le32() { hex_bytes 4 "$1" 1; }
le64() { hex_bytes 8 "$1" 1; }
rd_be64() { echo $(( 16#$(od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n') )); }

# The real root filesystem's files: /etc, dpkg's status and os-release of debian-12-min
# (partition 3 of its GPT disk), and rpm-sample's rpmdb.
start=$(sfdisk -d "$min/disk.raw" | awk -F'[=,]' '/disk.raw3/ {gsub(/ /,"",$2); print $2}')
dd if="$min/disk.raw" of="$t/root.ext4" bs=512 skip="$start" status=none
mkdir -p "$t/deb/var/lib/dpkg" "$t/deb/usr/lib"
debugfs -R "rdump /etc $t/deb" "$t/root.ext4" >/dev/null 2>&1
debugfs -R "dump /var/lib/dpkg/status $t/deb/var/lib/dpkg/status" "$t/root.ext4" >/dev/null 2>&1
debugfs -R "dump /usr/lib/os-release $t/deb/usr/lib/os-release" "$t/root.ext4" >/dev/null 2>&1
rm -f "$t/root.ext4"
[ -s "$t/deb/var/lib/dpkg/status" ] || { echo "hostile.sh: no dpkg status read" >&2; exit 1; }
qemu-img convert -O raw "$rpm/disk.qcow2" "$t/rpm.raw"
mkdir -p "$t/rpmdb"
debugfs -R "rdump /var/lib/rpm $t/rpmdb" "$t/rpm.raw" >/dev/null 2>&1
rm -f "$t/rpm.raw"

# A tree copy to spoil: tree NAME -> its directory.
tree() { rm -rf "$t/tree-$1"; cp -a "$t/deb" "$t/tree-$1"; echo "$t/tree-$1"; }
# mkfs KIND TREE OUT [MKFS-ARGS]: a 24 MiB unpartitioned filesystem made from TREE.
mkfs_() { rm -f "$3"; truncate -s 24M "$3"; "mkfs.$1" -q -F ${4:-} -d "$2" "$3" >/dev/null; }

mkfs_ ext4 "$t/deb" "$t/base.ext4"
mkfs_ ext3 "$t/deb" "$t/base.ext3"
mkfs_ ext2 "$t/deb" "$t/base.ext2"
# A GPT disk and an MBR disk holding the ext4, and qcow2 forms of the GPT disk.
truncate -s 26M "$t/gpt.raw"
printf 'label: gpt\nstart=2048, size=49152, type=linux\n' | sfdisk -q "$t/gpt.raw" >/dev/null
dd if="$t/base.ext4" of="$t/gpt.raw" bs=1M seek=1 conv=notrunc status=none
truncate -s 26M "$t/mbr.raw"
printf 'label: dos\nstart=2048, size=49152, type=83\n' | sfdisk -q "$t/mbr.raw" >/dev/null
dd if="$t/base.ext4" of="$t/mbr.raw" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -O qcow2 "$t/gpt.raw" "$t/base.qcow2"
qemu-img convert -c -O qcow2 "$t/gpt.raw" "$t/zlib.qcow2"
l1=$(rd_be64 "$t/base.qcow2" 40)
l2=$(( $(rd_be64 "$t/base.qcow2" "$l1") & 0x00fffffffffffe00 ))
zl1=$(rd_be64 "$t/zlib.qcow2" 40)
zl2=$(( $(rd_be64 "$t/zlib.qcow2" "$zl1") & 0x00fffffffffffe00 ))

# qcow2 header and tables (big-endian fields).
q() { cp "$t/base.qcow2" "$out/$1.qcow2"; case_ "$1.qcow2" "$2"; }
qp() { put "$out/$1.qcow2" "$2" "$3"; }
q qcow2-truncated-header "the file ends inside the header"; truncate -s 50 "$out/qcow2-truncated-header.qcow2"
q qcow2-truncated-tables "the file ends after the header, before its tables"; truncate -s 70000 "$out/qcow2-truncated-tables.qcow2"
q qcow2-version-9 "an unknown version"; qp qcow2-version-9 4 "$(be32 9)"
q qcow2-cluster-bits-40 "1 TiB clusters"; qp qcow2-cluster-bits-40 20 "$(be32 40)"
q qcow2-cluster-bits-8 "256-byte clusters"; qp qcow2-cluster-bits-8 20 "$(be32 8)"
q qcow2-size-absurd "a virtual size of 2^64-1"; qp qcow2-size-absurd 24 "$(be64 -1)"
q qcow2-l1-size-huge "an L1 table of 2^32-1 entries"; qp qcow2-l1-size-huge 36 "$(be32 0xffffffff)"
q qcow2-l1-outside "the L1 table far past the end of the file"; qp qcow2-l1-outside 40 "$(be64 0x7fffffff0000)"
q qcow2-l1-at-header "the L1 table is the header"; qp qcow2-l1-at-header 40 "$(be64 0)"
q qcow2-l1-unaligned "an L1 offset off cluster alignment"; qp qcow2-l1-unaligned 40 "$(be64 $((l1 + 1)))"
q qcow2-refcount-outside "the refcount table past the end"; qp qcow2-refcount-outside 48 "$(be64 0x7fffffff0000)"
q qcow2-refcount-clusters-huge "2^32-1 refcount table clusters"; qp qcow2-refcount-clusters-huge 56 "$(be32 0xffffffff)"
q qcow2-backing-name-outside "a backing name past the end of the file"; qp qcow2-backing-name-outside 8 "$(be64 0x7fffffff0000)"; qp qcow2-backing-name-outside 16 "$(be32 1000)"
q qcow2-snapshots-huge "65535 snapshots past the end"; qp qcow2-snapshots-huge 60 "$(be32 65535)"; qp qcow2-snapshots-huge 64 "$(be64 0x7fffffff0000)"
q qcow2-incompatible-all "every incompatible feature bit set"; qp qcow2-incompatible-all 72 "$(be64 -1)"
q qcow2-header-length-huge "a header length of 2^32-1"; qp qcow2-header-length-huge 100 "$(be32 0xffffffff)"
q qcow2-l2-outside "an L1 entry whose L2 table lies past the end"; qp qcow2-l2-outside "$l1" "$(be64 0x800000fffff00000)"
q qcow2-l2-is-l1 "the L2 table is the L1 table"; qp qcow2-l2-is-l1 "$l1" "$(be64 $((0x8000000000000000 | l1)))"
q qcow2-l2-is-header "the L2 table is the header cluster"; qp qcow2-l2-is-header "$l1" "$(be64 0x8000000000000010)"
q qcow2-data-outside "every data cluster of the first L2 table past the end"
for i in $(seq 0 63); do qp qcow2-data-outside $((l2 + 8 * i)) "$(be64 0x80000ffffff00000)"; done
# Compressed clusters: a deflate stream of 8 MiB of zeros where a 64 KiB cluster is, and
# descriptors claiming the most sectors a compressed cluster can have.
cp "$t/zlib.qcow2" "$out/qcow2-compressed-bomb.qcow2"; case_ qcow2-compressed-bomb.qcow2 "a compressed cluster inflating to 8 MiB"
bomb_at=$(( ($(stat -c %s "$out/qcow2-compressed-bomb.qcow2") + 511) / 512 * 512 ))
head -c 8M /dev/zero | gzip -c -n -9 | tail -c +11 | head -c -8 > "$t/bomb.deflate"
dd if="$t/bomb.deflate" of="$out/qcow2-compressed-bomb.qcow2" bs=512 seek=$((bomb_at / 512)) conv=notrunc status=none
# cluster_bits 16: the offset takes 62-(16-8)=54 bits, the sector count the 8 above.
for i in $(seq 0 31); do put "$out/qcow2-compressed-bomb.qcow2" $((zl2 + 8 * i)) "$(be64 $((0x4000000000000000 | (0xff << 54) | bomb_at)))"; done
cp "$t/zlib.qcow2" "$out/qcow2-compressed-garbage.qcow2"; case_ qcow2-compressed-garbage.qcow2 "compressed clusters that are random bytes"
head -c 65536 /dev/urandom | dd of="$out/qcow2-compressed-garbage.qcow2" bs=1 seek=$((bomb_at)) conv=notrunc status=none
for i in $(seq 0 31); do put "$out/qcow2-compressed-garbage.qcow2" $((zl2 + 8 * i)) "$(be64 $((0x4000000000000000 | (0x7f << 54) | bomb_at)))"; done

# Backing chains.
bk() { qemu-img create -q -f qcow2 -u -b "$2" -F "$3" "$out/$1" 26M; case_ "$1" "$4"; }
bk backing-loop-a.qcow2 backing-loop-b.qcow2 qcow2 "a backing loop of two files"
bk backing-loop-b.qcow2 backing-loop-a.qcow2 qcow2 "a backing loop of two files"
bk backing-self.qcow2 backing-self.qcow2 qcow2 "an image that backs itself"
bk backing-host-passwd.qcow2 /etc/passwd raw "a backing file outside the roots"
bk backing-escape.qcow2 ../../../../../../etc/shadow raw "a relative backing name climbing out"
mkfifo "$out/backing.fifo"
bk backing-fifo.qcow2 backing.fifo raw "a FIFO as backing file"
bk backing-dev-zero.qcow2 /dev/zero raw "/dev/zero as backing file"
bk backing-json.qcow2 'json:{"file.driver":"file","file.filename":"/etc/passwd"}' raw "a json: backing name"
bk backing-nbd.qcow2 nbd://127.0.0.1:10809/x raw "a network backing name"
cp "$t/base.qcow2" "$out/deep-00.qcow2"
for i in $(seq 1 40); do qemu-img create -q -f qcow2 -u -b "deep-$(printf %02d $((i - 1))).qcow2" -F qcow2 "$out/deep-$(printf %02d "$i").qcow2" 26M; done
case_ deep-40.qcow2 "a backing chain 40 deep"

# Partition tables (GPT header at LBA 1, entries from LBA 2; MBR entries at 446).
g() { cp "$t/gpt.raw" "$out/$1.raw"; case_ "$1.raw" "$2"; }
g gpt-entries-huge "a GPT claiming 2^32-1 entries"; put "$out/gpt-entries-huge.raw" $((512 + 80)) "$(le32 0xffffffff)"
g gpt-entry-size-huge "GPT entries of 256 MiB each"; put "$out/gpt-entry-size-huge.raw" $((512 + 84)) "$(le32 0x10000000)"
g gpt-entry-past-disk "a partition ending far past the disk"; put "$out/gpt-entry-past-disk.raw" $((1024 + 40)) "$(le64 0xffffffffffff)"
g gpt-entry-reversed "a partition ending before it starts"; put "$out/gpt-entry-reversed.raw" $((1024 + 32)) "$(le64 40000)"; put "$out/gpt-entry-reversed.raw" $((1024 + 40)) "$(le64 3000)"
g gpt-entries-at-header "the entry array is the header itself"; put "$out/gpt-entries-at-header.raw" $((512 + 72)) "$(le64 1)"
g gpt-overlapping "128 entries, all the same partition"
dd if="$out/gpt-overlapping.raw" of="$t/entry" bs=1 skip=1024 count=128 status=none
for i in $(seq 1 127); do dd if="$t/entry" of="$out/gpt-overlapping.raw" bs=1 seek=$((1024 + 128 * i)) conv=notrunc status=none; done
m() { cp "$t/mbr.raw" "$out/$1.raw"; case_ "$1.raw" "$2"; }
m mbr-size-huge "a partition of 2^32-1 sectors"; put "$out/mbr-size-huge.raw" $((446 + 12)) "$(le32 0xffffffff)"
m mbr-overlapping "four primary entries, all one partition"
dd if="$out/mbr-overlapping.raw" of="$t/mentry" bs=1 skip=446 count=16 status=none
for i in 1 2 3; do dd if="$t/mentry" of="$out/mbr-overlapping.raw" bs=1 seek=$((446 + 16 * i)) conv=notrunc status=none; done
m mbr-ebr-loop "an extended partition whose EBR links to itself"
put "$out/mbr-ebr-loop.raw" $((446 + 16 + 4)) '\x05'; put "$out/mbr-ebr-loop.raw" $((446 + 16 + 8)) "$(le32 51200)"; put "$out/mbr-ebr-loop.raw" $((446 + 16 + 12)) "$(le32 2048)"
put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 4)) '\x83'; put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 8)) "$(le32 1)"; put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 12)) "$(le32 1)"
put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 16 + 4)) '\x05'; put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 16 + 8)) "$(le32 0)"; put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 446 + 16 + 12)) "$(le32 2)"
put "$out/mbr-ebr-loop.raw" $((51200 * 512 + 510)) '\x55\xaa'
m mbr-protective-no-gpt "a protective MBR with no GPT behind it"; put "$out/mbr-protective-no-gpt.raw" $((446 + 4)) '\xee'

# ext2/3/4: superblock at 1024, group descriptors in the block after it.
e() { cp "$t/base.$2" "$out/$1.$2"; case_ "$1.$2" "$3"; }
sb() { put "$out/$1" $((1024 + $2)) "$3"; }
e ext-magic-zeroed ext4 "the superblock's magic is gone"; sb ext-magic-zeroed.ext4 0x38 '\x00\x00'
e ext-block-size-huge ext4 "a block size of 2^30"; sb ext-block-size-huge.ext4 0x18 "$(le32 20)"
e ext-inodes-per-group-0 ext4 "no inodes per group"; sb ext-inodes-per-group-0.ext4 0x28 "$(le32 0)"
e ext-blocks-per-group-0 ext4 "no blocks per group"; sb ext-blocks-per-group-0.ext4 0x20 "$(le32 0)"
e ext-inode-size-3 ext4 "3-byte inodes"; sb ext-inode-size-3.ext4 0x58 "$(le16 3)"
e ext-blocks-count-huge ext4 "2^32-1 blocks on 24 MiB"; sb ext-blocks-count-huge.ext4 0x04 "$(le32 0xffffffff)"
e ext-incompat-all ext4 "every incompatible feature"; sb ext-incompat-all.ext4 0x60 "$(le32 0xffffffff)"
e ext-desc-size-huge ext4 "64 KiB group descriptors"; sb ext-desc-size-huge.ext4 0xfe "$(le16 0xffff)"
e ext2-magic-zeroed ext2 "ext2 without its magic"; sb ext2-magic-zeroed.ext2 0x38 '\x00\x00'
e ext3-journal-inode-bad ext3 "a journal inode number past the inode count"; sb ext3-journal-inode-bad.ext3 0xe0 "$(le32 0x7fffffff)"
dbg() { debugfs -w -R "$2" "$out/$1" >/dev/null 2>&1 || true; }
e ext-gd-inode-table-outside ext4 "group 0's inode table past the filesystem"; dbg ext-gd-inode-table-outside.ext4 "set_bg 0 inode_table 0xfffffff"
e ext-gd-inode-table-at-sb ext4 "group 0's inode table is the superblock"; dbg ext-gd-inode-table-at-sb.ext4 "set_bg 0 inode_table 0"
e ext-root-extent-header ext4 "the root directory's extent header is garbage"; dbg ext-root-extent-header.ext4 "sif <2> block[0] 0xdeadbeef"
e ext-extent-depth-huge ext4 "dpkg status with an extent tree 32767 deep"; dbg ext-extent-depth-huge.ext4 "sif /var/lib/dpkg/status block[1] 0x7fff0004"
e ext-extent-outside ext4 "dpkg status whose extent starts past the filesystem"; dbg ext-extent-outside.ext4 "sif /var/lib/dpkg/status block[5] 0x7fffffff"
e ext-extent-at-sb ext4 "an /etc extent pointing at block 0"; dbg ext-extent-at-sb.ext4 "sif /etc block[5] 0"
e ext-file-size-huge ext4 "dpkg status claims 2^62 bytes"; dbg ext-file-size-huge.ext4 "sif /var/lib/dpkg/status size 0x4000000000000000"
e ext2-indirect-self ext2 "dpkg status's indirect block points at itself"
ind=$(debugfs -R "stat /var/lib/dpkg/status" "$out/ext2-indirect-self.ext2" 2>/dev/null | awk '/\(IND\)/ {sub(/.*\(IND\):/, ""); print $1; exit}')
dbg ext2-indirect-self.ext2 "sif /var/lib/dpkg/status block[IND] ${ind:-1}"
dbg ext2-indirect-self.ext2 "sif /var/lib/dpkg/status block[0] ${ind:-1}"
e ext2-double-indirect-outside ext2 "a double-indirect block past the filesystem"; dbg ext2-double-indirect-outside.ext2 "sif /var/lib/dpkg/status block[DIND] 0x7ffffff"
e ext2-block-map-garbage ext2 "every direct block of /etc's directory is garbage"
for i in 0 1 2 3 4 5 6 7 8 9 10 11; do dbg ext2-block-map-garbage.ext2 "sif /etc block[$i] $((0x7fff0000 + i))"; done
e ext-dir-loop ext4 "/etc linked into itself (a directory loop)"; dbg ext-dir-loop.ext4 "link /etc /etc/loop"
e ext-root-loop ext4 "the root directory linked under /var"; dbg ext-root-loop.ext4 "link / /var/root-again"
e ext-links-cycle ext4 "hard-link counts of zero and 65000, and a file linked from two directories"
dbg ext-links-cycle.ext4 "sif /etc/passwd links_count 0"; dbg ext-links-cycle.ext4 "sif /etc/group links_count 65000"; dbg ext-links-cycle.ext4 "link /etc/hostname /var/lib/dpkg/hostname"
e ext-dir-size-odd ext4 "a directory whose size is 1 byte"; dbg ext-dir-size-odd.ext4 "sif /var/lib/dpkg size 1"
e ext-dir-is-file ext4 "/var/lib/dpkg's inode typed as a regular file"; dbg ext-dir-is-file.ext4 "sif /var/lib/dpkg mode 0100644"

# Package databases and guest strings, in otherwise sound filesystems.
tf() { mkfs_ ext4 "$2" "$out/$1.ext4" "${4:-}"; case_ "$1.ext4" "$3"; }
d=$(tree dpkg-garbage); head -c 1M /dev/urandom > "$d/var/lib/dpkg/status"; tf dpkg-garbage "$d" "1 MiB of random bytes as dpkg status"
d=$(tree dpkg-long-line); head -c 8M /dev/zero | tr '\0' 'A' > "$d/var/lib/dpkg/status"; tf dpkg-long-line "$d" "an 8 MiB line without a newline as dpkg status"
d=$(tree dpkg-stanzas); for i in $(seq 1 20000); do printf 'Package: p%d\nStatus: install ok installed\nVersion: 1:%d-\n\n' "$i" "$i"; done > "$d/var/lib/dpkg/status"; tf dpkg-stanzas "$d" "20000 stanzas with broken versions"
d=$(tree dpkg-dir); rm "$d/var/lib/dpkg/status"; mkdir "$d/var/lib/dpkg/status"; tf dpkg-dir "$d" "dpkg status is a directory"
d=$(tree rpm-garbage); mkdir -p "$d/var/lib/rpm"; head -c 1M /dev/urandom > "$d/var/lib/rpm/rpmdb.sqlite"; head -c 1M /dev/urandom > "$d/var/lib/rpm/Packages"; head -c 1M /dev/urandom > "$d/var/lib/rpm/Packages.db"
rm "$d/var/lib/dpkg/status"; tf rpm-garbage "$d" "random bytes as rpmdb.sqlite, Packages (bdb) and Packages.db (ndb)"
d=$(tree rpm-truncated); mkdir -p "$d/var/lib/rpm"; for f in "$t"/rpmdb/rpm/*; do [ -f "$f" ] && head -c $(( $(stat -c %s "$f") / 2 )) "$f" > "$d/var/lib/rpm/$(basename "$f")"; done
rm "$d/var/lib/dpkg/status"; tf rpm-truncated "$d" "rpm-sample's real rpmdb cut in half"
d=$(tree apk-garbage); mkdir -p "$d/lib/apk/db"; head -c 1M /dev/urandom > "$d/lib/apk/db/installed"; printf 'ID=alpine\nVERSION_ID=3.20.0\n' > "$d/usr/lib/os-release"
rm "$d/var/lib/dpkg/status"; tf apk-garbage "$d" "random bytes as apk's installed database"
d=$(tree apk-long-field); mkdir -p "$d/lib/apk/db"; { printf 'P:'; head -c 4M /dev/zero | tr '\0' 'x'; printf '\nV:1-r0\n\n'; } > "$d/lib/apk/db/installed"; rm "$d/var/lib/dpkg/status"; tf apk-long-field "$d" "an apk entry with a 4 MiB name"
d=$(tree os-release-forged); printf 'ID=debian\nPRETTY_NAME="Debian\rrun 0000000000000: finished: FORGED\033[2J"\n' > "$d/usr/lib/os-release"; : > "$d/etc/$(printf 'evil\nrun 0000000000000: finished: FORGED')"; tf os-release-forged "$d" "control characters and ANSI escapes in PRETTY_NAME and a file name"
d=$(tree os-release-huge); head -c 4M /dev/zero | tr '\0' 'B' > "$d/usr/lib/os-release"; tf os-release-huge "$d" "a 4 MiB os-release line"
d=$(tree symlink-loop); rm -f "$d/etc/os-release"; ln -s os-release "$d/etc/os-release"; rm "$d/usr/lib/os-release"; ln -s ../../etc/os-release "$d/usr/lib/os-release"; ln -s a "$d/etc/b"; ln -s b "$d/etc/a"; tf symlink-loop "$d" "os-release symlinks that loop"
d=$(tree symlink-out); rm -f "$d/etc/os-release" "$d/usr/lib/os-release"; ln -s /../../../../etc/os-release "$d/usr/lib/os-release"; ln -s ../usr/lib/os-release "$d/etc/os-release"; rm "$d/var/lib/dpkg/status"; ln -s /etc/shadow "$d/var/lib/dpkg/status"; ln -s ../../../../../../../../proc/self/environ "$d/etc/environ"; tf symlink-out "$d" "symlinks aimed at host files, absolute and climbing"
d=$(tree symlink-chain); prev=os-release; for i in $(seq 1 100); do ln -s "$prev" "$d/etc/chain$i"; prev=chain$i; done; rm -f "$d/etc/os-release"; ln -s "chain100" "$d/etc/os-release"; rm -f "$d/usr/lib/os-release"; tf symlink-chain "$d" "os-release at the end of 100 chained symlinks"
d=$(tree deep-dirs); p="$d"; for i in $(seq 1 600); do p="$p/d"; done; mkdir -p "$p" 2>/dev/null || true; tf deep-dirs "$d" "directories 600 deep"
d=$(tree wide-dir); mkdir "$d/wide"; (cd "$d/wide" && seq 1 30000 | xargs touch); tf wide-dir "$d" "a directory of 30000 entries" "-N 40000"

# The same broken filesystems inside qcow2 on a GPT disk: the reader stack end to end.
for c in ext-dir-loop ext-root-extent-header ext-extent-outside; do
  cp "$t/gpt.raw" "$t/wrap.raw"
  dd if="$out/$c.ext4" of="$t/wrap.raw" bs=1M seek=1 conv=notrunc status=none
  qemu-img convert -O qcow2 "$t/wrap.raw" "$out/gpt-qcow2-$c.qcow2"
  case_ "gpt-qcow2-$c.qcow2" "$c inside a qcow2 GPT disk"
done
echo "$out"
