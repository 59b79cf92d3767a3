#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with Schemathesis (from PyPI) against a real
# `errand serve` on a temporary SQLite file, with every check: no 5xx; every answer's status,
# content type, headers and body as the document says; schema-violating requests refused
# (negative_data_rejection) and schema-valid ones accepted (positive_data_acceptance: the
# request schemas are generated from the handlers' types and carry the rules the server
# checks). Bounded: a fixed number of examples per operation and a time budget, so CI stays
# fast. A claim may long-poll for up to 30 s (its `wait`), so answers may take that long.
#
# No U+0000 in generated strings: no store keeps it, so the server refuses it anywhere in a
# job's args, keys included, and OpenAPI 3.0 has no way to constrain an object's keys (the
# args schema says so in its description). Every other rule is in the schemas themselves.
#
#   bash .ci/schemathesis.sh [path/to/errand]      # default target/debug/errand (cargo build first)
set -euo pipefail
cd "$(dirname "$0")/.."

errand=${1:-target/debug/errand}
[ -x "$errand" ] || cargo build --locked --bin errand
source .ci/serve-lib.sh
venv=target/schemathesis-venv
pinned_venv "$venv" schemathesis 4.32.5 schemathesis
serve_sqlite "$errand" schemathesis

# Some jobs in several states, so reads and operator actions have something to act on.
for i in 1 2 3; do
    curl -sf "http://127.0.0.1:$port/v1/jobs" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d "{\"kind\":\"k$i\",\"args\":{\"i\":$i}}" >/dev/null
done

status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-60}" \
    --request-timeout 40 \
    --max-response-time 35 \
    --generation-allow-x00 false \
    --seed 7 \
    --no-color \
    --report-dir "$dir/report" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- errand serve log (tail)"
    tail -n 50 "$dir/serve.log"
fi
exit "$status"
