#!/usr/bin/env bash
# Installs the Debian packages coldpatch's build, image scripts and tests need (chromium
# and chromium-driver drive the console's browser tests, wrk the load bench, postgresql
# the shared catalog's tests and bench).
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

pkgs=(debootstrap fdisk e2fsprogs rpm xz-utils zstd libclang-dev pkg-config
      libguestfs-tools libguestfs-dev chromium chromium-driver wrk postgresql)
missing=()
for p in "${pkgs[@]}" qemu-system-x86; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "install-deps: all system packages present"; exit 0; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# qemu on these machines comes from bookworm-backports; libguestfs needs the matching
# qemu-system-x86, so take that one from backports too.
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "deb ${mirror%/} bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null
$SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
echo "install-deps: installed ${missing[*]}"
