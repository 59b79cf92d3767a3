#!/usr/bin/env bash
# HTTP enqueue benchmark: `wrk` (Debian package) POSTs to a real `errand serve` (release build)
# on loopback, one job per request and 100 jobs per request (POST /v1/jobs/batch), on SQLite
# and on PostgreSQL; prints requests/s, jobs/s and the p50/p99 latency of each.
#
#   bash crates/errand-bench/http.sh                         # both backends, 10 s per run
#   DURATION=30s CONNECTIONS=32 BACKENDS=postgres bash crates/errand-bench/http.sh
#
# Each run gets a fresh database (a temporary SQLite file; a new PostgreSQL database on
# ERRAND_BENCH_DATABASE_URL's server, dropped afterwards). The server runs without tokens on
# 127.0.0.1 and claims nothing (no tasks configured), so only enqueue is measured. wrk and the
# server share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-"sqlite postgres"}
PG=${ERRAND_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --locked -p errand-cli --bin errand >&2
errand=target/release/errand
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The request bodies, as wrk Lua scripts.
cat >"$work/single.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"kind":"bench_http","args":{"to":"ada@example.com","n":1}}'
LUA
{
    printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    printf "wrk.body = '{\"jobs\":["
    for i in $(seq 1 100); do
        [ "$i" -gt 1 ] && printf ','
        printf '{"kind":"bench_http","args":{"to":"ada@example.com","n":%d}}' "$i"
    done
    printf "]}'\n"
} >"$work/batch.lua"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wrk's "Requests/sec:" and the 50%/99% latency lines, in milliseconds.
parse() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad) }
    ' "$1"
}

printf '| backend | request | requests/s | jobs/s | p50 (ms) | p99 (ms) | non-2xx |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for backend in $BACKENDS; do
    for kind in single batch; do
        case "$backend" in
            sqlite) db="$work/bench-$kind.db" ;;
            postgres)
                name="errand_bench_http_$$_$kind"
                db="${PG%/*}/$name"
                psql "$PG" -qc "CREATE DATABASE $name" >&2
                ;;
        esac
        port=$(free_port)
        ERRAND_SERVER_LISTEN="127.0.0.1:$port" "$errand" --database "$db" serve >"$work/serve.log" 2>&1 &
        pid=$!
        for _ in $(seq 1 100); do
            curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
            sleep 0.1
        done
        path=/v1/jobs
        per=1
        if [ "$kind" = batch ]; then path=/v1/jobs/batch; per=100; fi
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/$kind.lua" \
            "http://127.0.0.1:$port$path" >"$work/wrk.txt"
        read -r rps p50 p99 bad < <(parse "$work/wrk.txt")
        jobs=$(awk -v r="$rps" -v p="$per" 'BEGIN { printf "%.0f", r * p }')
        printf '| %s | %s | %.0f | %s | %.2f | %.2f | %s |\n' "$backend" \
            "$([ "$kind" = batch ] && echo "batch of 100" || echo "one job")" "$rps" "$jobs" "$p50" "$p99" "$bad"
        kill "$pid"; wait "$pid" 2>/dev/null || true
        pid=
        if [ "$backend" = postgres ]; then
            psql "$PG" -qc "DROP DATABASE $name WITH (FORCE)" >&2
        fi
    done
done
