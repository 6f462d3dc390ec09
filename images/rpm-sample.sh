#!/usr/bin/env bash
# rpm-sample: small packages built here with rpmbuild and installed with rpm --root into a
# fresh root, giving a real rpmdb.sqlite under /var/lib/rpm; an os-release describes it.
# The root is an unpartitioned ext4 in a qcow2. Oracles: packages.tsv (rpm -qa), files.tsv,
# sha256.tsv. The built .rpm files are kept in rpms/. Prints the output directory.
source "$(dirname "$0")/lib.sh"
out=$(image_dir rpm-sample "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
top=$PWD/rpmbuild
mkdir -p "$top"/{SPECS,SOURCES,BUILD,RPMS,SRPMS}

# name epoch version release arch [extra header lines]
spec() {
  cat > "$top/SPECS/$1.spec" <<SPEC
Name: $1
${2:+Epoch: $2}
Version: $3
Release: $4
Summary: coldpatch rpm test package $1
License: MIT
BuildArch: $5
${6:-}
%description
A small package built by coldpatch's image scripts.
%install
mkdir -p %{buildroot}/usr/share/$1 %{buildroot}/etc
echo "$1 $3-$4" > %{buildroot}/usr/share/$1/VERSION
echo "setting=$1" > %{buildroot}/etc/$1.conf
%files
/usr/share/$1
%config(noreplace) /etc/$1.conf
SPEC
  rpmbuild -bb --quiet --define "_topdir $top" "$top/SPECS/$1.spec" >/dev/null 2>&1
}
spec cp-hello "" 1.0 1 noarch
spec cp-libfoo 2 3.4.1 5.el9 x86_64
spec cp-tools "" 0.9~rc1 1 x86_64 $'Requires: cp-libfoo >= 2:3.4\nProvides: cp-tool-api = 1\nConflicts: cp-oldtools < 0.5'
spec cp-caret "" 1.0^git20260101 2 noarch

mkdir -p root/etc root/var/lib/rpm
cat > root/etc/os-release <<OSR
NAME="coldpatch rpm sample"
ID=coldpatch-rpm-sample
ID_LIKE="rhel fedora"
VERSION_ID=1.0
PRETTY_NAME="coldpatch rpm sample 1.0"
OSR
rpm --root "$PWD/root" --dbpath /var/lib/rpm --define '_db_backend sqlite' --initdb
rpm --root "$PWD/root" --dbpath /var/lib/rpm --define '_db_backend sqlite' -i --nodeps --ignorearch --noscripts \
  "$top"/RPMS/*/*.rpm
rpm --root "$PWD/root" --dbpath /var/lib/rpm -qa \
  --qf '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n' | LC_ALL=C sort > packages.tsv
# rpm leaves its lock and WAL helper files; a stopped image would not have them mid-write.
rm -f root/var/lib/rpm/.rpm.lock root/var/lib/rpm/rpmdb.sqlite-shm root/var/lib/rpm/rpmdb.sqlite-wal
fs_oracle root .
make_ext4 root fs.img 16
qemu-img convert -O qcow2 fs.img disk.qcow2
# The built packages stay, as a local rpm repository for the patcher's tests.
mkdir -p rpms && cp "$top"/RPMS/*/*.rpm rpms/
rm -rf root fs.img rpmbuild
touch done
finish "$tmp" "$out"
