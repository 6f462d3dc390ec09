#!/usr/bin/env bash
# repo-bullseye-security: a local package repository of the real security updates for the
# packages debian-11-old carries, downloaded with apt-get from bullseye-security through an
# isolated apt root (the host's own apt state is not touched). Laid out as a mirror subset:
#   repo/pool/...                                          the .deb files, at their Filename
#   repo/dists/bullseye-security/main/binary-amd64/Packages the archive's own stanzas for them
# Oracle: updates.tsv (name, installed version, update version, source). Prints the directory.
# Cached by this script's hash: the archive moves on, a cached repository does not.
source "$(dirname "$0")/lib.sh"
out=$(image_dir repo-bullseye-security "$0")
[ -f "$out/done" ] && { echo "$out"; exit 0; }
old=$(bash "$IMAGES_DIR/build.sh" debian-11-old | tail -n 1 | cut -d' ' -f2)
tmp="$out.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
mirror=$(debian_mirror); mirror=${mirror%/}
security=${mirror%/debian}/debian-security
apt_root=$tmp/apt
mkdir -p "$apt_root"/etc/apt/{sources.list.d,preferences.d,apt.conf.d} "$apt_root"/var/lib/apt/lists/partial \
  "$apt_root"/var/cache/apt/archives/partial "$apt_root"/var/lib/dpkg
touch "$apt_root/var/lib/dpkg/status"
cat > "$apt_root/etc/apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $security bullseye-security main
SRC
opts=(-o "Dir=$apt_root" -o "Dir::State::status=$apt_root/var/lib/dpkg/status"
      -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Debug::NoLocking=1
      -o Acquire::Languages=none -o Acquire::GzipIndexes=false -o APT::Sandbox::User=root
      -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
      -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false)
apt-get "${opts[@]}" -qq update
lists=$apt_root/var/lib/apt/lists
sec_packages=$(ls "$lists"/*bullseye-security_main_binary-amd64_Packages)

# Every installed package with a newer version in bullseye-security.
: > "$tmp/updates.tsv"
while IFS=$'\t' read -r name version arch source _; do
  cand=$(awk -v p="Package: $name" -v RS= 'index($0 "\n", p "\n") == 1 {print}' "$sec_packages" \
    | awk '/^Version: /{print $2}' | sort -V | tail -n1)
  [ -n "$cand" ] || continue
  dpkg --compare-versions "$version" lt "$cand" || continue
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$cand" "$source" >> "$tmp/updates.tsv"
done < "$old/packages.tsv"
[ -s "$tmp/updates.tsv" ] || { echo "no security updates found" >&2; exit 1; }

mkdir -p "$tmp/dl" "$tmp/repo/dists/bullseye-security/main/binary-amd64"
(cd "$tmp/dl" && apt-get "${opts[@]}" -qq download $(awk -F'\t' '{print $1"="$3}' "$tmp/updates.tsv"))
# Place each file at its Filename and keep the archive's stanza for it.
idx=$tmp/repo/dists/bullseye-security/main/binary-amd64/Packages
: > "$idx"
while IFS=$'\t' read -r name _ cand _; do
  stanza=$(awk -v p="Package: $name" -v v="Version: $cand" -v RS= \
    'index($0 "\n", p "\n") == 1 && index($0 "\n", "\n" v "\n") {print; exit}' "$sec_packages")
  file=$(printf '%s\n' "$stanza" | awk '/^Filename: /{print $2}')
  mkdir -p "$tmp/repo/$(dirname "$file")"
  [ -n "$file" ] || { echo "no stanza for $name $cand" >&2; exit 1; }
  # apt-get download names the file with the epoch (%3a), the pool without it.
  mv "$tmp/dl/${name}_"*.deb "$tmp/repo/$file"
  printf '%s\n\n' "$stanza" >> "$idx"
done < "$tmp/updates.tsv"
rm -rf "$tmp/apt" "$tmp/dl"
touch "$tmp/done"
rm -rf "$out"; mv "$tmp" "$out"
echo "$out"
