#!/usr/bin/env bash
# Benchmark: patch N copies (default 8) of debian-11-old with the same bullseye-security
# update, side by side:
#   - coldpatch patch apply on all copies in one run (one appliance; planning, upload,
#     dpkg, fsck, native re-collect, verification and commit included);
#   - the same with --appliances P (P = the number of CPUs, when above 1) on copies of
#     its own;
#   - virt-customize driven one image at a time with the same .deb files and the same
#     dpkg stages (--copy-in, --run-command 'dpkg -i …' per stage, --delete), each
#     on its own copy.
# The copies are not byte-identical: like copies of one golden image deployed as hosts,
# each has its own /etc/hostname, /etc/machine-id and ssh host key, written into all of
# them by one guestfish appliance before anything is timed.
# Both run the appliance under TCG (KVM hangs on these machines). Prints the wall times,
# the ratios, and where coldpatch's time went (the runs' own timing events, summed by
# stage). Usage: bench/patch.sh [COPIES]
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

cpus=$(nproc)
mkdir -p "$work/cp" "$work/cpp" "$work/vc" "$work/debs"
for i in $(seq 1 "$n"); do
  cp "$img" "$work/cp/copy-$i.qcow2"
  cp "$img" "$work/vc/copy-$i.qcow2"
  [ "$cpus" -gt 1 ] && cp "$img" "$work/cpp/copy-$i.qcow2"
done
# Host-specific files, one appliance for every copy. debian-11-old's root is the logical
# partition 5 of its DOS table (images/lib.sh, mbr_disk).
python3 - "$work" "$n" > "$work/hosts.gf" <<'EOF'
import os, string, sys
work, n = sys.argv[1], int(sys.argv[2])
def dev(k):
    name = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        name = string.ascii_lowercase[r] + name
    return f"/dev/sd{name}5"
files = [f"{work}/{d}/copy-{i}.qcow2" for d in ("cp", "cpp", "vc") for i in range(1, n + 1)
         if os.path.exists(f"{work}/{d}/copy-{i}.qcow2")]
for f in files:
    print(f"add {f} format:qcow2")
print("run")
for k, f in enumerate(files):
    host = os.path.basename(os.path.dirname(f)) + "-" + os.path.basename(f)[5:-6]
    print(f"mount {dev(k)} /")
    print(f'write /etc/hostname "{host}\\n"')
    print(f'write /etc/machine-id "{os.urandom(16).hex()}\\n"')
    print("mkdir-p /etc/ssh")
    print(f'write /etc/ssh/ssh_host_ed25519_key "{os.urandom(32).hex()}\\n"')
    print("umount-all")
EOF
guestfish -f "$work/hosts.gf"
"$bin" collect --no-files "$work"/cp/*.qcow2 >/dev/null
[ "$cpus" -gt 1 ] && "$bin" collect --no-files "$work"/cpp/*.qcow2 >/dev/null
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
tp0=$t1; tp1=$t1
if [ "$cpus" -gt 1 ]; then
  tp0=$(date +%s.%N)
  "$bin" patch apply "$work"/cpp/*.qcow2 --repo "$repo" --all-fixable --appliances "$cpus" > "$work/cpp.out" 2> "$work/cpp.err" \
    || { cat "$work/cpp.out" "$work/cpp.err"; exit 1; }
  tp1=$(date +%s.%N)
fi

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

python3 - "$t0" "$t1" "$t2" "$t3" "$tp0" "$tp1" "$n" "$committed" "$cpus" <<'EOF'
import sys
t0, t1, t2, t3, tp0, tp1 = map(float, sys.argv[1:7])
n, committed, cpus = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
cp, vc, cpp = t1 - t0, t3 - t2, tp1 - tp0
print(f"coldpatch patch apply, {n} images, one appliance:   {cp:7.1f} s  ({cp / n:.1f} s per image; {committed} committed)")
if cpus > 1:
    print(f"coldpatch patch apply, {n} images, {cpus} appliances:   {cpp:7.1f} s  ({cpp / n:.1f} s per image)")
print(f"virt-customize, one image at a time:               {vc:7.1f} s  ({vc / n:.1f} s per image)")
print(f"ratio virt-customize / coldpatch, one appliance:   {vc / cp:7.2f}x  (target >= 4x)")
if cpus > 1:
    print(f"ratio virt-customize / coldpatch, {cpus} appliances:    {vc / cpp:7.2f}x")
print(f"machine: {cpus} CPUs, appliances under TCG")
EOF
grep 'appliance' "$work/cp.err" | head -n1 | sed 's/^/coldpatch: /'

# Where the time went: the runs' timing events ("STAGE SECONDS s"), summed per stage
# over the images (appliance-wide stages once).
for d in cp cpp; do
  [ -s "$work/$d.out" ] || continue
  id=$(grep -h -m1 -o 'run [0-9T]*-[0-9a-f]*' "$work/$d.out" "$work/$d.err" | sed -n '1s/^run //p')
  [ -n "$id" ] || continue
  "$bin" run "$id" --json | python3 -c '
import json, sys, collections
label = sys.argv[1]
run = json.load(sys.stdin)
total, count = collections.OrderedDict(), collections.Counter()
for e in run["events"]:
    if e["kind"] != "timing":
        continue
    stage, secs, _ = e["message"].rsplit(" ", 2)
    total[stage] = total.get(stage, 0.0) + float(secs)
    count[stage] += 1
print(f"stages, {label} (seconds summed; images side by side overlap):")
for stage, t in total.items():
    print(f"  {stage:36s} {t:8.1f} s  over {count[stage]}")
' "$([ $d = cp ] && echo 'one appliance' || echo "$cpus appliances")"
done
