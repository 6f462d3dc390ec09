#!/usr/bin/env bash
# Benchmark: patch N copies (default 8) of debian-11-old with the same bullseye-security
# update, side by side:
#   - coldpatch patch apply on all copies in one run (one appliance; planning, upload,
#     dpkg, fsck, native re-collect, verification and commit included);
#   - virt-customize driven one image at a time with the same .deb files and the same
#     dpkg stages (--copy-in, --run-command 'dpkg -i …' per stage, --delete), each
#     on its own copy.
# Both run the appliance under TCG (KVM hangs on these machines). Prints both wall
# times and the ratio. Usage: bench/patch.sh [COPIES]
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
command -v virt-customize >/dev/null || { echo "bench: needs virt-customize (libguestfs-tools)" >&2; exit 2; }
n=${1:-8}
cargo build --release --locked -q
bin=$PWD/target/release/coldpatch
img=$(bash images/build.sh debian-11-old | cut -d" " -f2)/disk.qcow2
repo=$(bash images/build.sh repo-bullseye-security | cut -d" " -f2)/repo
work=$(mktemp -d /var/tmp/coldpatch-bench.XXXXXX); trap 'rm -rf "$work"' EXIT
export COLDPATCH_DATA_DIR=$work/data

mkdir -p "$work/cp" "$work/vc" "$work/debs"
for i in $(seq 1 "$n"); do
  cp "$img" "$work/cp/copy-$i.qcow2"
  cp "$img" "$work/vc/copy-$i.qcow2"
done
"$bin" collect --no-files "$work"/cp/*.qcow2 >/dev/null
for f in tests/data/feeds/debian-tracker.json tests/data/feeds/osv; do "$bin" feed import "$f" >/dev/null; done

# The plan of one copy gives virt-customize the same files and stages.
"$bin" patch plan "$work/cp/copy-1.qcow2" --repo "$repo" --all-fixable --json > "$work/plan.json"
stages=$(python3 - "$work/plan.json" "$repo" "$work/debs" <<'EOF'
import json, os, shutil, sys
plan, repo, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
by = {}
for s in plan["steps"]:
    shutil.copy(os.path.join(repo, s["file"]), out)
    by.setdefault(s["stage"], []).append("/var/cache/debs/" + os.path.basename(s["file"]))
print(" ".join(str(len(by[k])) for k in sorted(by)))
for k in sorted(by):
    print(" ".join(by[k]), file=open(os.path.join(out, f"../stage-{k}"), "w"))
EOF
)
pkgs=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["steps"]))' "$work/plan.json")
echo "patching $n copies of debian-11-old: $pkgs packages, dpkg stages of $stages"

t0=$(date +%s.%N)
"$bin" patch apply "$work"/cp/*.qcow2 --repo "$repo" --all-fixable > "$work/cp.out" 2> "$work/cp.err" \
  || { cat "$work/cp.out" "$work/cp.err"; exit 1; }
t1=$(date +%s.%N)
committed=$(grep -c 'version 1' "$work/cp.out" || true)

run_cmds=()
for f in "$work"/stage-*; do
  run_cmds+=(--run-command "DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold -i $(cat "$f")")
done
t2=$(date +%s.%N)
for i in $(seq 1 "$n"); do
  virt-customize -q --format qcow2 -a "$work/vc/copy-$i.qcow2" --no-network \
    --copy-in "$work/debs:/var/cache" "${run_cmds[@]}" --delete /var/cache/debs >/dev/null
done
t3=$(date +%s.%N)

python3 - "$t0" "$t1" "$t2" "$t3" "$n" "$committed" <<'EOF'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
n, committed = int(sys.argv[5]), int(sys.argv[6])
cp, vc = t1 - t0, t3 - t2
print(f"coldpatch patch apply, {n} images, one run:  {cp:7.1f} s  ({cp / n:.1f} s per image; {committed} committed)")
print(f"virt-customize, one image at a time:        {vc:7.1f} s  ({vc / n:.1f} s per image)")
print(f"ratio virt-customize / coldpatch:           {vc / cp:7.2f}x  (target >= 4x)")
EOF
grep 'appliance' "$work/cp.err" | head -n1 | sed 's/^/coldpatch: /'
