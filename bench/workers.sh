#!/usr/bin/env bash
# Workers on loopback, one private PostgreSQL server (images/postgres.sh): collect
# throughput with 1, 2 and 4 `coldpatch worker` processes over hard links of
# debian-12-min, and a patch batch of debian-11-old copies on 1 worker (one appliance
# batch) and on 2 (a batch each), each printed as a ratio to one worker, with every
# worker's CPU use (its own and its appliances', from /proc) and the coordination cost
# it measured (claims, heartbeats, finishing jobs, its own events) per image. A CPU
# share near 100% per worker with the ratio flat says the CPUs are the limit, not the
# queue. Last, how late `serve`'s event stream (GET /api/v1/runs/{id}/events, which
# polls the database) delivers the events two workers write: the delay from each
# event's time to its arrival at a client. Not a test: run it alone.
#   bash bench/workers.sh [COLLECT_IMAGES] [PATCH_IMAGES]   (0 patch images: collect only)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-64}; np=${2:-8}
cargo build --release --locked -q
bin=$PWD/target/release/coldpatch
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
dir_of() { bash images/build.sh "$1" | tail -n1 | cut -d' ' -f2; }
min=$(dir_of debian-12-min)/disk.qcow2
old=$(dir_of debian-11-old)/disk.qcow2
repo=$(dir_of repo-bullseye-security)/repo
work=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-workers-bench.XXXXXX")
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-workers-bench-pg.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash images/postgres.sh stop "$pgdir"
  rm -rf "$work"
}
trap cleanup EXIT
read -r sock port < <(bash images/postgres.sh start "$pgdir")
tck=$(getconf CLK_TCK)

# CPU seconds of a process and its waited-for children (qemu) so far.
cpu_of() { awk -v t="$tck" '{ printf "%.1f", ($14 + $15 + $16 + $17) / t }' "/proc/$1/stat"; }

# round NAME KIND WORKERS BATCH IMAGES: one catalog, WORKERS workers, one run; prints
# "seconds" and one line per worker, and leaves the per-worker lines in $work/NAME.w.
round() {
  local name=$1 kind=$2 k=$3 batch=$4 count=$5
  psql -X -q -h "$sock" -p "$port" -U coldpatch -d postgres -c "CREATE DATABASE $name"
  export COLDPATCH_CATALOG="postgres://coldpatch@/$name?host=$sock&port=$port"
  export COLDPATCH_STATE_DIR=$work/$name/state
  local fleet=$work/$name/fleet imgs=()
  mkdir -p "$fleet"
  local src=$min
  [ "$kind" = patch ] && src=$old
  for i in $(seq 1 "$count"); do
    ln "$src" "$fleet/i$i.qcow2" 2>/dev/null || cp "$src" "$fleet/i$i.qcow2"
    imgs+=("$fleet/i$i.qcow2")
  done
  if [ "$kind" = patch ]; then
    "$bin" collect --no-files "${imgs[@]}" >/dev/null
    for f in debian-tracker.json osv; do "$bin" feed import "tests/data/feeds/$f" >/dev/null; done
    "$bin" repo index "$repo" >/dev/null
  fi
  local ws=()
  for w in $(seq 1 "$k"); do
    "$bin" worker --name "w$w" --image-root "$fleet" --slots 1 --batch "$batch" \
      2>"$work/$name.w$w.log" &
    ws+=($!); pids+=($!)
  done
  sleep 1
  local t0 t1 id
  t0=$(date +%s%N)
  if [ "$kind" = patch ]; then
    id=$("$bin" patch apply --queue --wait --json --repo "$repo" --cve CVE-2025-69418 "${imgs[@]}" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["state"]=="succeeded", r; print(r["id"])')
  else
    id=$("$bin" collect --queue --wait --json "${imgs[@]}" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["state"]=="succeeded", r; print(r["id"])')
  fi
  t1=$(date +%s%N)
  : >"$work/$name.w"
  for w in $(seq 1 "$k"); do
    local p=${ws[$((w - 1))]}
    local cpu; cpu=$(cpu_of "$p")
    kill -TERM "$p"; wait "$p" 2>/dev/null || true
    local coord; coord=$(grep -o 'coordination [0-9.]* ms per image' "$work/$name.w$w.log" | grep -o '[0-9.]*' || echo '?')
    local took; took=$(grep -o 'stopped after [0-9]* part(s), [0-9]* image(s)' "$work/$name.w$w.log" | grep -o '[0-9]* image' | grep -o '[0-9]*' || echo 0)
    echo "w$w $cpu $took $coord" >>"$work/$name.w"
  done
  echo "$(( (t1 - t0) / 1000000 ))"
}

report() {
  local label=$1 ms=$2 base=$3 name=$4 count=$5
  local wall; wall=$(echo "scale=1; $ms / 1000" | bc)
  printf '%-28s %8s s %10.1f img/min %6.2fx' "$label" "$wall" "$(echo "scale=3; $count * 60000 / $ms" | bc)" \
    "$(echo "scale=3; $base / $ms" | bc)"
  while read -r w cpu took coord; do
    printf '  %s: %s img, cpu %s%%, coord %s ms/img' "$w" "$took" \
      "$(echo "scale=0; 100 * $cpu * 1000 / $ms" | bc)" "$coord"
  done <"$work/$name.w"
  printf '\n'
}

echo "machine: $(nproc) CPU(s); collect $n images, patch $np images"
# The queue alone (claim, event, finish; no collect competing for the CPUs).
cargo bench --locked -q -p coldpatch-catalog --bench queue --no-run 2>/dev/null
qbin=$(ls -t target/release/deps/queue-* | grep -v '\.d$' | head -n1)
for k in 1 2 4; do
  psql -X -q -h "$sock" -p "$port" -U coldpatch -d postgres -c "CREATE DATABASE q$k"
  BENCH_CATALOG="postgres://coldpatch@/q$k?host=$sock&port=$port" BENCH_WORKERS=$k "$qbin"
done
c1=$(round c1 collect 1 1 "$n")
c2=$(round c2 collect 2 1 "$n")
c4=$(round c4 collect 4 1 "$n")
report "collect, 1 worker" "$c1" "$c1" c1 "$n"
report "collect, 2 workers" "$c2" "$c1" c2 "$n"
report "collect, 4 workers" "$c4" "$c1" c4 "$n"
if [ "$np" -gt 0 ]; then
  p1=$(round p1 patch 1 "$np" "$np")
  report "patch, 1 worker (1 batch)" "$p1" "$p1" p1 "$np"
  p2=$(round p2 patch 2 $(( (np + 1) / 2 )) "$np")
  report "patch, 2 workers (a batch each)" "$p2" "$p1" p2 "$np"
fi

# The event stream: a server that only serves (--workers 0), a viewer token, two workers
# collecting; a client reads the run's server-sent events and measures each one's delay.
psql -X -q -h "$sock" -p "$port" -U coldpatch -d postgres -c "CREATE DATABASE sse"
export COLDPATCH_CATALOG="postgres://coldpatch@/sse?host=$sock&port=$port"
export COLDPATCH_STATE_DIR=$work/sse/state
mkdir -p "$work/sse/fleet"
imgs=()
for i in $(seq 1 16); do ln "$min" "$work/sse/fleet/i$i.qcow2" 2>/dev/null || cp "$min" "$work/sse/fleet/i$i.qcow2"; imgs+=("$work/sse/fleet/i$i.qcow2"); done
token=$("$bin" token create --role viewer --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
"$bin" serve --listen 127.0.0.1:0 --workers 0 2>"$work/sse.serve.log" & pids+=($!)
for _ in $(seq 1 100); do grep -q 'API on http://' "$work/sse.serve.log" && break; sleep 0.1; done
addr=$(grep -o 'API on http://[^/]*' "$work/sse.serve.log" | sed 's|API on http://||')
for w in 1 2; do
  "$bin" worker --name "s$w" --image-root "$work/sse/fleet" --slots 1 2>"$work/sse.w$w.log" & pids+=($!)
done
sleep 1
id=$("$bin" collect --queue "${imgs[@]}")
python3 - "$addr" "$id" "$token" <<'PY'
import http.client, json, sys, time
addr, run, token = sys.argv[1:]
host, port = addr.split(":")
c = http.client.HTTPConnection(host, int(port), timeout=300)
c.request("GET", f"/api/v1/runs/{run}/events", headers={"Authorization": f"Bearer {token}"})
r = c.getresponse()
delays = []
for line in r:
    line = line.decode().strip()
    if not line.startswith("data: "):
        continue
    e = json.loads(line[6:])
    now = time.time() * 1000
    if e["kind"] != "queued":  # written before the client connected
        delays.append(now - e["time_ms"])
    if e["kind"] == "finished" and not e.get("image"):
        break
delays.sort()
print(f"event stream (polling every 300 ms): {len(delays)} events, delay median {delays[len(delays)//2]:.0f} ms, "
      f"p90 {delays[int(len(delays)*0.9)]:.0f} ms, max {delays[-1]:.0f} ms")
PY
