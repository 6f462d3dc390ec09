#!/usr/bin/env bash
# Benchmark: what changed between debian-11-old and its patched version (the real
# bullseye-security update applied by coldpatch), side by side:
#   - coldpatch diff IMAGE@0 IMAGE@1 --times (from the catalog; the collect that fills
#     the catalog is timed on its own line, since it is paid once per version);
#   - virt-diff --checksum on the same two files (an appliance under TCG that walks and
#     checksums both trees).
# Also checks that both report the same set of paths (virt-diff's st_dev changes left
# out: its two disks are two devices). Prints wall times and the ratio.
# Usage: bench/diff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
command -v virt-diff >/dev/null || { echo "bench: needs virt-diff (libguestfs-tools)" >&2; exit 2; }
cargo build --release --locked -q
bin=$PWD/target/release/coldpatch
img=$(bash images/build.sh debian-11-old | cut -d" " -f2)/disk.qcow2
repo=$(bash images/build.sh repo-bullseye-security | cut -d" " -f2)/repo
work=$(mktemp -d /var/tmp/coldpatch-bench.XXXXXX); trap 'rm -rf "$work"' EXIT
export COLDPATCH_DATA_DIR=$work/data
cp "$img" "$work/old.qcow2"
for f in tests/data/feeds/debian-tracker.json tests/data/feeds/osv; do "$bin" feed import "$f" >/dev/null; done
t0=$(date +%s.%N)
"$bin" collect "$work/old.qcow2" >/dev/null
t1=$(date +%s.%N)
"$bin" patch apply "$work/old.qcow2" --repo "$repo" --all-fixable >/dev/null 2>&1
v1=$("$bin" show "$work/old.qcow2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["versions"][1]["file"])')

t2=$(date +%s.%N)
"$bin" diff "$work/old.qcow2@0" "$work/old.qcow2@1" --times --json > "$work/ours.json"
t3=$(date +%s.%N)
virt-diff --checksum --format=qcow2 -a "$work/old.qcow2" -A "$v1" > "$work/theirs.txt"
t4=$(date +%s.%N)

python3 - "$work/ours.json" "$work/theirs.txt" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import json, re, sys
ours = {f["path"] for f in json.load(open(sys.argv[1]))["files"]}
entry = re.compile(r"^([-+=]) (\S) ([0-7]{4}) +\d+ (.*)$")
lines = open(sys.argv[2]).read().split("\n")
theirs, i = set(), 0
while i < len(lines):
    m = entry.match(lines[i])
    if not m:
        i += 1
        continue
    mark, path = m.group(1), [w for w in m.group(4).split(" -> ")[0].split() if w.startswith("/")][-1]
    if mark == "=":
        theirs.add(path)
        while i < len(lines) and lines[i] != "@@ End of diff @@":
            i += 1
    elif mark == "-" and i + 2 < len(lines) and lines[i + 2].startswith("# changed:"):
        if set(lines[i + 2][len("# changed:"):].split()) - {"st_dev"}:
            theirs.add(path)
        i += 2
    else:
        theirs.add(path)
    i += 1
t0, t1, t2, t3, t4 = map(float, sys.argv[3:])
print(f"paths: coldpatch {len(ours)}, virt-diff {len(theirs)}, same set: {ours == theirs}")
print(f"coldpatch collect (once per version): {t1 - t0:.2f} s")
print(f"coldpatch diff (catalog):             {t3 - t2:.3f} s")
print(f"virt-diff --checksum:                 {t4 - t3:.1f} s")
print(f"ratio virt-diff / coldpatch diff:     {(t4 - t3) / (t3 - t2):.0f}x")
PY
