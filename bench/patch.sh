#!/usr/bin/env bash
# Benchmark: patch N copies of debian-11-old with the same bullseye-security update, for
# each N given (default: 8 16), side by side in one run:
#   - coldpatch patch apply --no-replay on all N copies in one run (one appliance: dpkg
#     on every copy, as many at once as there are CPUs; planning, upload, fsck, native
#     re-collect, verification and commit included);
#   - coldpatch patch apply on N copies of their own, with replay (the default): dpkg on
#     one reference, its change set replayed onto the others where it applies;
#   - virt-customize driven one image at a time with the same .deb files and the same
#     dpkg stages (--copy-in, --run-command 'dpkg -i …' per stage, --delete). It runs
#     once over max(N) copies; the time for N is its time for the first N images.
# The copies are not byte-identical: like copies of one golden image deployed as hosts,
# each has its own /etc/hostname, /etc/machine-id and ssh host key, written into all of
# them by one guestfish appliance before anything is timed. Every copy is collected with
# files and hashes first (not timed), as a security team's catalog holds them.
# Both run the appliance under TCG (KVM hangs on these machines). Prints the wall times,
# the ratios, and where coldpatch's time went (the runs' own timing events, summed by
# stage). Usage: bench/patch.sh [COPIES...]
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
command -v virt-customize >/dev/null || { echo "bench: needs virt-customize (libguestfs-tools)" >&2; exit 2; }
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(8 16)
max=$(printf '%s\n' "${sizes[@]}" | sort -n | tail -n1)
cargo build --release --locked -q
bin=$PWD/target/release/coldpatch
img=$(bash images/build.sh debian-11-old | cut -d" " -f2)/disk.qcow2
repo=$(bash images/build.sh repo-bullseye-security | cut -d" " -f2)/repo
work=$(mktemp -d /var/tmp/coldpatch-bench.XXXXXX); trap 'rm -rf "$work"' EXIT
export COLDPATCH_DATA_DIR=$work/data

cpus=$(nproc)
mkdir -p "$work/vc" "$work/debs"
for n in "${sizes[@]}"; do
  mkdir -p "$work/plain-$n" "$work/replay-$n"
  for i in $(seq 1 "$n"); do
    cp "$img" "$work/plain-$n/copy-$i.qcow2"
    cp "$img" "$work/replay-$n/copy-$i.qcow2"
  done
done
for i in $(seq 1 "$max"); do cp "$img" "$work/vc/copy-$i.qcow2"; done
# Host-specific files, one appliance for every copy. debian-11-old's root is the logical
# partition 5 of its DOS table (images/lib.sh, mbr_disk).
python3 - "$work" > "$work/hosts.gf" <<'EOF'
import glob, os, string, sys
work = sys.argv[1]
def dev(k):
    name = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        name = string.ascii_lowercase[r] + name
    return f"/dev/sd{name}5"
files = sorted(glob.glob(f"{work}/*/copy-*.qcow2"))
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
for n in "${sizes[@]}"; do
  "$bin" collect "$work/plain-$n"/*.qcow2 "$work/replay-$n"/*.qcow2 >/dev/null
done
for f in tests/data/feeds/debian-tracker.json tests/data/feeds/osv; do "$bin" feed import "$f" >/dev/null; done

# The plan of one copy gives virt-customize the same files and stages.
"$bin" patch plan "$work/plain-${sizes[0]}/copy-1.qcow2" --repo "$repo" --all-fixable --json > "$work/plan.json"
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
echo "patching copies of debian-11-old (${sizes[*]}): $pkgs packages, dpkg stages of $stages"

# One coldpatch run: apply on every copy of DIR; prints its wall time.
apply() {
  local dir=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" patch apply "$work/$dir"/*.qcow2 --repo "$repo" --all-fixable "$@" > "$work/$dir.out" 2> "$work/$dir.err" \
    || { cat "$work/$dir.out" "$work/$dir.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}
: > "$work/times"
for n in "${sizes[@]}"; do
  # A failed run ends the benchmark (apply runs in a subshell: its exit is this status).
  t=$(apply "plain-$n" --no-replay) || exit 1
  echo "plain $n $t $(grep -c 'version 1' "$work/plain-$n.out" || true)" >> "$work/times"
  t=$(apply "replay-$n") || exit 1
  echo "replay $n $t $(grep -c 'version 1' "$work/replay-$n.out" || true)" >> "$work/times"
done

run_cmds=()
for f in "$work"/stage-*; do
  run_cmds+=(--run-command "DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold -i $(cat "$f")")
done
t0=$(date +%s.%N)
for i in $(seq 1 "$max"); do
  virt-customize -q --format qcow2 -a "$work/vc/copy-$i.qcow2" --no-network \
    --copy-in "$work/debs:/var/cache" "${run_cmds[@]}" --delete /var/cache/debs >/dev/null
  t=$(date +%s.%N)
  echo "vc $i $(python3 -c "print(f'{$t - $t0:.3f}')")" >> "$work/times"
done

python3 - "$work/times" "$cpus" "${sizes[@]}" <<'EOF'
import sys
lines = [l.split() for l in open(sys.argv[1])]
cpus, sizes = int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
t = {(k, int(n)): (float(s), int(c)) for k, n, s, c in (l for l in lines if l[0] != "vc")}
vc = {int(n): float(s) for k, n, s in (l for l in lines if l[0] == "vc")}
for n in sizes:
    plain, pc = t[("plain", n)]
    rep, rc = t[("replay", n)]
    v = vc[n]
    print(f"{n} copies:")
    print(f"  coldpatch, one appliance, no replay:  {plain:7.1f} s  ({plain / n:5.1f} s per image; {pc} committed)")
    print(f"  coldpatch, one appliance, replay:     {rep:7.1f} s  ({rep / n:5.1f} s per image; {rc} committed)")
    print(f"  virt-customize, one image at a time:  {v:7.1f} s  ({v / n:5.1f} s per image)")
    print(f"  ratio virt-customize / coldpatch:     {v / plain:7.2f}x without replay (target at 8: >= 4x)")
    print(f"                                        {v / rep:7.2f}x with replay (target at 16: >= 8x)")
print(f"machine: {cpus} CPUs, appliances under TCG")
EOF

# Where the time went: the runs' timing events ("STAGE SECONDS s"), summed per stage
# over the images (appliance-wide stages once), and what was replayed.
for n in "${sizes[@]}"; do
  for d in "plain-$n" "replay-$n"; do
    id=$(grep -h -m1 -o 'run [0-9T]*-[0-9a-f]*' "$work/$d.out" "$work/$d.err" | sed -n '1s/^run //p')
    [ -n "$id" ] || continue
    "$bin" run "$id" --json | python3 -c '
import json, sys, collections
label = sys.argv[1]
run = json.load(sys.stdin)
total, count = collections.OrderedDict(), collections.Counter()
replayed = 0
for e in run["events"]:
    if e["kind"] == "replay" and e["message"].startswith("replayed from"):
        replayed += 1
    if e["kind"] != "timing":
        continue
    stage, secs, _ = e["message"].rsplit(" ", 2)
    total[stage] = total.get(stage, 0.0) + float(secs)
    count[stage] += 1
print(f"stages, {label} ({replayed} replayed; seconds summed, images side by side overlap):")
for stage, t in total.items():
    print(f"  {stage:36s} {t:8.1f} s  over {count[stage]}")
' "$d"
  done
done
