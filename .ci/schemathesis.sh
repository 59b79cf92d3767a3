#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with Schemathesis (from PyPI) against a real
# `errand serve` on a temporary SQLite file, with every check but one: no 5xx; every answer's
# status, content type, headers and body as the document says; schema-violating requests
# refused (negative_data_rejection). Bounded: a fixed number of examples per operation and a
# time budget, so CI stays fast.
#
# Left out: positive_data_acceptance (every schema-valid request accepted). The request
# schemas do not yet carry every rule the server checks (a cron expression's grammar, an IANA
# zone, a duration's range, "run_at or delay, not both"), so the server rightly answers 400,
# naming the field, to some schema-valid bodies.
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
    --exclude-checks positive_data_acceptance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-60}" \
    --request-timeout 40 \
    --seed 7 \
    --no-color \
    --report-dir "$dir/report" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- errand serve log (tail)"
    tail -n 50 "$dir/serve.log"
fi
exit "$status"
