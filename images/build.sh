#!/usr/bin/env bash
# Builds (or finds in the cache) the named test images and prints one "name dir" line each.
# Usage: images/build.sh [NAME...]   (default: every image)
# Concurrent callers (parallel test binaries) wait on a per-image lock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${COLDPATCH_IMAGE_CACHE:-$HOME/.cache/coldpatch/images}
mkdir -p "$cache"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(debian-12-min debian-11-old rpm-sample debian-12-server lvm-xfs repo-bullseye-security alpine)
for n in "${names[@]}"; do
  [ -f "$here/$n.sh" ] || { echo "build.sh: no image script $n.sh" >&2; exit 2; }
  dir=$(flock "$cache/$n.lock" bash "$here/$n.sh" | tail -n 1)
  # Drop versions of this image built by older scripts (same name, another hash).
  for old in "$cache/$n"-*; do
    [[ "$old" =~ /$n-[0-9a-f]{12}$ ]] && [ "$old" != "$dir" ] && flock "$cache/$n.lock" rm -rf "$old"
  done
  echo "$n $dir"
done
