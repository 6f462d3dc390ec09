#!/usr/bin/env bash
# Load on the console (loopback only, bounded): a 1,000-image catalog, 200 concurrent
# wrk connections reading the dashboard and image pages for 30 s while a collect run
# rescans images in the server's job queue. Prints wrk's latency distribution, the p99
# and the error count. Not a test: run it alone.
#   bash bench/serve.sh [IMAGES] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}; secs=${2:-30}; conns=${3:-200}
command -v wrk >/dev/null || { echo "wrk is missing: bash images/install-deps.sh" >&2; exit 1; }
cargo build --release --locked -q
bin=$PWD/target/release/coldpatch
old=$(bash images/build.sh debian-11-old | cut -d' ' -f2)
min=$(bash images/build.sh debian-12-min | cut -d' ' -f2)
work=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-serve-bench.XXXXXX")
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
export COLDPATCH_DATA_DIR=$work/catalog
# 1,000 images: hard links to two real images, each its own path, so each is collected
# and stored as an image of its own (files listed, not hashed, to build the catalog
# faster; what the pages read is the same).
mkdir -p "$work/fleet"
for i in $(seq 1 "$n"); do
  if (( i % 2 )); then ln "$old/disk.qcow2" "$work/fleet/img-$i.qcow2"
  else ln "$min/disk.qcow2" "$work/fleet/img-$i.qcow2"; fi
done
start=$(date +%s)
find "$work/fleet" -name '*.qcow2' -print0 | xargs -0 -n 100 "$bin" collect --no-hash >/dev/null
echo "collected $n images in $(( $(date +%s) - start )) s"
"$bin" feed import tests/data/feeds/debian-tracker.json >/dev/null
"$bin" feed import tests/data/feeds/osv >/dev/null
op=$("$bin" token create --role operator --name bench 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --workers 1 --insecure-cookies 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.2; done
cookie=$(curl -s -o /dev/null -D - --data-urlencode "token=$op" "http://127.0.0.1:$port/login" \
  | tr -d '\r' | sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip')
# Warm the fleet view once, as the first visitor would.
curl -sf -H "Cookie: $cookie" "http://127.0.0.1:$port/" >/dev/null
cat > "$work/pages.lua" <<LUA
local n = $n
local i = 0
request = function()
  i = i + 1
  local path = "/"
  if i % 2 == 0 then path = "/images/" .. ((i * 7919) % n + 1) end
  return wrk.format("GET", path, { ["Cookie"] = "$cookie" })
end
done = function(summary, latency, requests)
  io.write(string.format("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests %d, errors: connect %d read %d write %d timeout %d status %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
LUA
# A collect run during the load: rescan 20 images through the job queue.
imgs=$(python3 -c 'import glob,json,sys; print(json.dumps(sorted(glob.glob(sys.argv[1] + "/*.qcow2"))[:20]))' "$work/fleet")
run=$(curl -s -H "Authorization: Bearer $op" -H 'content-type: application/json' \
  -d "{\"images\": $imgs, \"rescan\": true}" "http://127.0.0.1:$port/api/v1/scans")
echo "collect run queued: $run" | cut -c1-160
wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$work/pages.lua" "http://127.0.0.1:$port"
id=$(echo "$run" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
state=$(curl -s -H "Authorization: Bearer $op" "http://127.0.0.1:$port/api/v1/runs/$id" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["state"])')
echo "collect run $id: $state"
