#!/usr/bin/env bash
# chaos.sh N (not a test): runs `coldpatch patch apply` on a copy of debian-11-old (the
# bullseye-security fix of CVE-2025-69418) N times (default 50), each killed with SIGKILL
# at a random moment: a phase is drawn (planning, overlay, appliance launch, mount,
# upload, dpkg, install, fsck, verify, commit), and the kill comes 0-1.5 s after the
# run logs it. A uniform moment over the whole run would land mostly in the appliance's
# launch, which takes most of the time.
# After each kill:
#   - the original's SHA-256 is unchanged;
#   - `show`, `runs` and `run ID` answer, and every overlay under the state directory is
#     a version's file or named after a run the catalog holds (none left without a run);
#   - the next `patch apply` succeeds and sweeps the killed run: it is `interrupted` and
#     its overlay is gone (or it had finished before the kill);
#   - `patch rollback` returns the image to version 0 for the next round.
# Prints where each kill landed (the killed run's last event) and a tally.
# Usage: bench/chaos.sh [N]   (COLDPATCH_BIN: the binary; default target/debug/coldpatch)
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
n=${1:-50}
bin=${COLDPATCH_BIN:-$PWD/target/debug/coldpatch}
[ -x "$bin" ] || cargo build --locked -q
src=$(bash images/build.sh debian-11-old | cut -d" " -f2)/disk.qcow2
repo=$(bash images/build.sh repo-bullseye-security | cut -d" " -f2)/repo
work=$(mktemp -d /var/tmp/coldpatch-chaos.XXXXXX); trap 'rm -rf "$work"' EXIT
export COLDPATCH_DATA_DIR=$work/data
img=$work/img.qcow2
cp "$src" "$img"
sha0=$(sha256sum "$img" | cut -d' ' -f1)
"$bin" collect --no-files "$img" >/dev/null
for f in tests/data/feeds/debian-tracker.json tests/data/feeds/osv; do "$bin" feed import "$f" >/dev/null; done
apply() { "$bin" patch apply "$img" --repo "$repo" --cve CVE-2025-69418 --json; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
fail() { echo "chaos: round $round: $*" >&2; exit 1; }

# One whole run first: how long a run takes, and that it works at all.
t0=$(date +%s%N)
apply > "$work/first.json" || { cat "$work/first.json"; exit 1; }
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
"$bin" patch rollback "$img" >/dev/null
echo "a whole run takes $full_ms ms; killing $n runs at random moments in it"

phases=(planned overlay appliance mounted upload dpkg installed fsck verified committed)
declare -A landed
for round in $(seq 1 "$n"); do
  before=$("$bin" runs --json | field '" ".join(r["id"] for r in d)')
  target=${phases[RANDOM % ${#phases[@]}]}
  extra_ms=$(( RANDOM % 1501 ))
  # Started directly (not through the function), so $! is coldpatch itself.
  t0=$(date +%s%N)
  "$bin" patch apply "$img" --repo "$repo" --cve CVE-2025-69418 --json \
    > "$work/killed.json" 2> "$work/killed.log" &
  pid=$!
  until grep -q ": $target:" "$work/killed.log" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do
    sleep 0.05
  done
  sleep "$(printf '0.%03d' "$extra_ms")"
  kill -KILL "$pid" 2>/dev/null || true
  delay_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  wait "$pid" 2>/dev/null || true
  # libguestfs's recovery process (a fork of the killed process, holding its descriptors,
  # the catalog's lock among them) kills the orphaned qemu within ~2 s and exits; until
  # then the catalog is refused as in use. Wait for it, at most 20 s, and count the wait.
  waited=0
  until runs=$("$bin" runs --json 2>/dev/null); do
    sleep 0.5; waited=$((waited + 500))
    [ "$waited" -le 20000 ] || fail "the catalog stayed locked 20 s after the kill"
  done

  [ "$(sha256sum "$img" | cut -d' ' -f1)" = "$sha0" ] || fail "the original changed"
  # The killed run: the apply run that was not there before (none if it was killed
  # before it was recorded).
  id=$(echo "$runs" | BEFORE="$before" field '" ".join(r["id"] for r in d if r["kind"] == "apply" and r["id"] not in __import__("os").environ["BEFORE"].split())')
  if [ -n "$id" ]; then
    ev=$("$bin" run "$id" --json) || fail "run $id failed"
    last=$(echo "$ev" | field '[e["kind"] for e in d["events"]][-1]')
    state=$(echo "$ev" | field 'd["run"]["state"]')
  else
    id="" last="before-the-run-was-recorded" state="none"
  fi
  "$bin" show "$img" --json > "$work/show.json" || fail "show failed"
  files=$(field '"\n".join(v.get("file") or "" for v in d["versions"])' < "$work/show.json")
  ids=$(echo "$runs" | field '"\n".join(r["id"] for r in d)')
  while IFS= read -r o; do
    [ -n "$o" ] || continue
    grep -qxF "$o" <<<"$files" && continue
    base=$(basename "$o" .qcow2); base=${base%%.*}
    grep -qxF "$base" <<<"$ids" || fail "overlay $o belongs to no run"
  done < <(find "$work/data" -name '*.qcow2' -path '*versions*' 2>/dev/null)

  apply > "$work/next.json" 2> "$work/next.log" || fail "the next apply failed: $(tail -3 "$work/next.log")"
  next_state=$(field 'd["run"]["state"]' < "$work/next.json")
  [ "$next_state" = "succeeded" ] || fail "the next run is $next_state"
  if [ -n "$id" ]; then
    swept=$("$bin" run "$id" --json | field 'd["run"]["state"]')
    case "$state:$swept" in
      succeeded:succeeded | failed:failed | *:interrupted) ;;
      *) fail "killed run $id was $state and is $swept after the next run" ;;
    esac
    if [ "$swept" = interrupted ] && find "$work/data" -path '*versions*' -name "$id*.qcow2" | grep -q .; then
      fail "killed run $id's overlay is still there after the next run"
    fi
    [ "$state" = "succeeded" ] && last="finished-before-the-kill"
  fi
  "$bin" patch rollback "$img" >/dev/null || fail "rollback failed"
  landed[$last]=$(( ${landed[$last]:-0} + 1 ))
  printf 'round %2d: aimed after %-9s killed at %6d ms, after event %-26s catalog free after %5d ms; ok\n' \
    "$round" "$target" "$delay_ms" "$last" "$waited"
done
echo "$n of $n rounds consistent; where the kills landed (the killed run's last event):"
for k in "${!landed[@]}"; do printf '  %-28s %d\n' "$k" "${landed[$k]}"; done | sort
