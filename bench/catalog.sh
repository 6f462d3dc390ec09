#!/usr/bin/env bash
# The catalog's backends side by side, on one generated fleet (catalog/benches/scan.rs:
# 10,000 images of the real debian-12-server package set, 100 files each, 100,000
# advisories), built once into a sled directory and once into a private PostgreSQL
# server (images/postgres.sh). Then the CLI, on each backend in turn: the fleet scan,
# `affected`, `packages --name X --older-than V` and `files --sha256 H`; each timed as
# the median of 5 runs, with the ratio PostgreSQL / sled. Not a test: run it alone.
#   bash bench/catalog.sh [IMAGES] [ADVISORIES] [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}; adv=${2:-100000}; files=${3:-100}
cargo build --release --locked -q
cargo bench --locked -q -p coldpatch-catalog --bench scan --no-run 2>/dev/null
benchbin=$(ls -t target/release/deps/scan-* | grep -v '\.d$' | head -n1)
bin=$PWD/target/release/coldpatch
work=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-catalog-bench.XXXXXX")
# The server's directory is its own, not under $work: as root, the server runs as nobody,
# who must reach it.
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/coldpatch-catalog-bench-pg.XXXXXX")
trap 'bash images/postgres.sh stop "$pgdir"; rm -rf "$work"' EXIT
read -r sock port < <(bash images/postgres.sh start "$pgdir")
psql -X -q -h "$sock" -p "$port" -U coldpatch -d postgres -c "CREATE DATABASE bench"
sled=$work/sled
pg="postgres://coldpatch@/bench?host=$sock&port=$port"
for at in "$sled" "$pg"; do
  BENCH_CATALOG=$at BENCH_IMAGES=$n BENCH_ADVISORIES=$adv BENCH_FILES=$files "$benchbin"
done
psql -X -q -h "$sock" -p "$port" -U coldpatch -d bench -c "VACUUM ANALYZE" >/dev/null

# What the queries ask: a package every image has, a version between its held-back and
# current revisions, a file content every image holds, an advisory that matches.
pkg=$("$bin" --catalog "$sled" packages --image /fleet/image-00000.qcow2 --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["package"]["name"])')
ver=$("$bin" --catalog "$sled" packages --image /fleet/image-00000.qcow2 --name "$pkg" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["package"]["version"])')
sha=$(printf '%064x' 0)
# A content one image holds (image 5's own file 1: see BENCH_FILES in the bench).
own=$(printf '%064x' $(( (5 << 20) | 1 )))
cve=$("$bin" --catalog "$sled" scan /fleet/image-00000.qcow2 --json 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["findings"][0]["advisory"])')

# Median wall time of 5 runs, in milliseconds; stdout thrown away.
median_ms() {
  local t=()
  for _ in 1 2 3 4 5; do
    local s e
    s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N)
    t+=($(( (e - s) / 1000000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 3p
}

printf '\n%-44s %10s %12s %7s\n' "query ($n images, $adv advisories)" "sled ms" "postgres ms" "ratio"
row() {
  local what=$1; shift
  local a b
  a=$(median_ms "$bin" --catalog "$sled" "$@")
  b=$(median_ms "$bin" --catalog "$pg" "$@")
  printf '%-44s %10d %12d %7.2f\n' "$what" "$a" "$b" "$(echo "scale=4; $b / ($a + 0.0001)" | bc)"
}
base() {
  local what=$1; shift
  printf '%-44s %10d\n' "$what" "$(median_ms "$@")"
}
base "process start alone (--help)" "$bin" --help
row "open the catalog (run of a missing id)" run nope
row "scan (fleet, --json)" scan --json
row "affected $cve" affected "$cve" --json
row "packages --name $pkg --older-than $ver" packages --name "$pkg" --older-than "$ver" --json
row "files --sha256 (a content one image holds)" files --sha256 "$own" --json
row "files --sha256 (a content every image holds)" files --sha256 "$sha" --json
row "images --json" images --json
