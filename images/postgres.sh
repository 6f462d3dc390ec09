#!/usr/bin/env bash
# A private PostgreSQL server for the tests and benches, never the system's:
#   images/postgres.sh start DIR   initdb into DIR/data, listen on a unix socket in DIR and
#                                  on a free loopback port; prints "DIR PORT"
#   images/postgres.sh stop DIR    stop it and remove DIR
#   images/postgres.sh restart DIR [SECONDS]
#                                  kill it (immediate shutdown, as a crash), stay down
#                                  SECONDS, start it again on the same port
# PostgreSQL refuses to run as root (CI runs as root): then the server runs as `nobody`.
# Sockets are trusted (the test user `coldpatch` is a superuser without a password); TCP
# asks for a password (scram), so a wrong one can be tested: `coldpatch`'s is `coldpatch`.
# fsync is off: the tests kill coldpatch processes, never the server or the machine, so
# durability against power loss buys nothing here and costs minutes.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bin/initdb" ] || { echo "postgres.sh: no PostgreSQL server (run images/install-deps.sh)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi
}

serve() {
  as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 \
    -o "-k $1 -p $2 -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >/dev/null || { cat "$1/server.log" >&2; exit 1; }
}

case "${1:-}" in
  start)
    dir=${2:?usage: postgres.sh start DIR}
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      chown nobody:nogroup "$dir"
      setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -w "$dir" \
        || { echo "postgres.sh: $dir must be reachable by nobody (its parents searchable)" >&2; exit 1; }
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U coldpatch -E UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$port" >"$dir/port"
    serve "$dir" "$port"
    "$bin/psql" -X -q -h "$dir" -p "$port" -U coldpatch -d postgres \
      -c "ALTER ROLE coldpatch PASSWORD 'coldpatch'" >/dev/null
    echo "$dir $port"
    ;;
  restart)
    dir=${2:?usage: postgres.sh restart DIR [SECONDS]}
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    sleep "${3:-0}"
    serve "$dir" "$(cat "$dir/port")"
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: images/postgres.sh start DIR | stop DIR | restart DIR [SECONDS]" >&2
    exit 2
    ;;
esac
