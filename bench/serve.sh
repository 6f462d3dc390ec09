#!/usr/bin/env bash
# Load on the console (loopback only, bounded): a 10,000-image catalog, 200 concurrent
# wrk connections, for SECONDS on each of three pages in turn: the dashboard, the image
# list filtered, sorted and paged (by label where the binary has labels), and image
# pages; a collect run rescans images in the server's job queue meanwhile. Prints each
# page's latency distribution, p99 and error count. Not a test: run it alone.
#   bash bench/serve.sh [IMAGES] [SECONDS] [CONNECTIONS]
# COLDPATCH_BIN runs another build (an older one, for a before/after on one machine);
# COLDPATCH_BENCH_DIR keeps the fleet and catalog there, so a second run reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}; secs=${2:-20}; conns=${3:-200}
command -v wrk >/dev/null || { echo "wrk is missing: bash images/install-deps.sh" >&2; exit 1; }
if [ -z "${COLDPATCH_BIN:-}" ]; then cargo build --release --locked -q; fi
bin=${COLDPATCH_BIN:-$PWD/target/release/coldpatch}
old=$(bash images/build.sh debian-11-old | cut -d' ' -f2)
min=$(bash images/build.sh debian-12-min | cut -d' ' -f2)
if [ -n "${COLDPATCH_BENCH_DIR:-}" ]; then
  work=$COLDPATCH_BENCH_DIR; mkdir -p "$work"
  trap 'kill $server 2>/dev/null || true' EXIT
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-serve-bench.XXXXXX")
  trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
fi
export COLDPATCH_DATA_DIR=$work/catalog
# The images: hard links to two real images, each its own path, so each is collected
# and stored as an image of its own (files listed, not hashed, to build the catalog
# faster; what the pages read is the same).
if [ ! -e "$work/collected" ]; then
  mkdir -p "$work/fleet"
  for i in $(seq 1 "$n"); do
    if (( i % 2 )); then ln -f "$old/disk.qcow2" "$work/fleet/img-$i.qcow2"
    else ln -f "$min/disk.qcow2" "$work/fleet/img-$i.qcow2"; fi
  done
  start=$(date +%s)
  find "$work/fleet" -name '*.qcow2' -print0 | xargs -0 -n 200 "$bin" collect --no-hash >/dev/null
  echo "collected $n images in $(( $(date +%s) - start )) s"
  "$bin" feed import tests/data/feeds/debian-tracker.json >/dev/null
  "$bin" feed import tests/data/feeds/osv >/dev/null
  touch "$work/collected"
fi
# Labels, where this build has them: ten owners, two tiers.
labels=no
if "$bin" label --help >/dev/null 2>&1; then
  labels=yes
  if [ ! -e "$work/labelled" ]; then
    start=$(date +%s)
    for o in $(seq 0 9); do
      find "$work/fleet" -name "img-*$o.qcow2" -print0 | xargs -0 -n 500 sh -c \
        '"$0" label "$@" owner=team-'"$o"' tier=$(( '"$o"' % 2 ))' "$bin" >/dev/null
    done
    echo "labelled $n images in $(( $(date +%s) - start )) s"
    touch "$work/labelled"
  fi
fi
op=$("$bin" token create --role operator --name bench 2>/dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --workers 1 --insecure-cookies --image-root "$work/fleet" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/api/v1/health" >/dev/null && break; sleep 0.2; done
cookie=$(curl -s -o /dev/null -D - --data-urlencode "token=$op" "http://127.0.0.1:$port/login" \
  | tr -d '\r' | sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip')
# Warm the fleet view once, as the first visitor would.
start=$(date +%s.%N)
curl -sf -H "Cookie: $cookie" "http://127.0.0.1:$port/" >/dev/null
echo "first dashboard (builds the fleet view): $(python3 -c "import time; print(f'{time.time() - $start:.1f}')") s"
# The filtered list: by label and sorted by criticals where there are labels, else by
# what the older console filters on; each request a different page.
if [ $labels = yes ]; then list='/?label=owner%3Dteam-3&min_severity=high&sort=critical&limit=50&offset='
else list='/?q=img-1&min_severity=high&offset='; fi
page_lua() {
cat > "$work/pages.lua" <<LUA
local n = $n
local i = 0
request = function()
  i = i + 1
  local path = "/"
  if "$1" == "list" then path = "$list" .. ((i * 50) % 500) end
  if "$1" == "image" then path = "/images/" .. ((i * 7919) % n + 1) end
  return wrk.format("GET", path, { ["Cookie"] = "$cookie" })
end
done = function(summary, latency, requests)
  io.write(string.format("$1: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("$1: requests %d, errors: connect %d read %d write %d timeout %d status %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
LUA
}
# One request of each, checked: a page that fails is no benchmark.
for p in "/" "${list}0" "/images/1"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "http://127.0.0.1:$port$p")
  [ "$code" = 200 ] || { echo "GET $p answered $code" >&2; exit 1; }
done
# A collect run during the load: rescan 20 images through the job queue.
imgs=$(python3 -c 'import glob,json,sys; print(json.dumps(sorted(glob.glob(sys.argv[1] + "/*.qcow2"))[:20]))' "$work/fleet")
run=$(curl -s -H "Authorization: Bearer $op" -H 'content-type: application/json' \
  -d "{\"images\": $imgs, \"rescan\": true}" "http://127.0.0.1:$port/api/v1/scans")
echo "collect run queued: $run" | cut -c1-160
for page in dashboard list image; do
  page_lua $page
  wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$work/pages.lua" "http://127.0.0.1:$port" \
    | grep -E "^(dashboard|list|image):|Requests/sec"
done
id=$(echo "$run" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
state=$(curl -s -H "Authorization: Bearer $op" "http://127.0.0.1:$port/api/v1/runs/$id" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["run"]["state"])')
echo "collect run $id: $state"
