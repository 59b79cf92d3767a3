#!/usr/bin/env bash
# Generates a Python client from the HTTP API's OpenAPI document with openapi-python-client
# (from PyPI, pinned) and drives a real `errand serve` with it: list, show, enqueue and claim
# jobs, and read schedules, queues and workers. Any error the client raises (a response the
# document does not describe, a value its models refuse) fails the run; nothing is skipped.
#
#   bash .ci/openapi-client.sh [path/to/errand]      # default target/debug/errand (cargo build first)
set -euo pipefail
cd "$(dirname "$0")/.."

errand=${1:-target/debug/errand}
[ -x "$errand" ] || cargo build --locked --bin errand
source .ci/serve-lib.sh
venv=target/openapi-client-venv
pinned_venv "$venv" openapi-python-client 0.29.1 openapi-python-client
serve_sqlite "$errand" client
curl -sf "http://127.0.0.1:$port/v1/openapi.json" -o "$dir/openapi.json"

# The generated package is installed into the same venv (its own dependencies: httpx, attrs,
# python-dateutil), replacing the one of an earlier run.
(cd "$dir" && PATH="$OLDPWD/$venv/bin:$PATH" "$OLDPWD/$venv/bin/openapi-python-client" generate --path openapi.json \
    --meta setup --output-path errand_client_pkg --overwrite >"$dir/generate.log" 2>&1) || {
    cat "$dir/generate.log"; exit 1; }
if grep -q 'Warning' "$dir/generate.log"; then
    echo "openapi-python-client warned about the document:"; cat "$dir/generate.log"; exit 1
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$dir/errand_client_pkg"
"$venv/bin/pip" install --quiet --disable-pip-version-check httpx attrs python-dateutil

status=0
"$venv/bin/python" .ci/openapi_client_test.py "http://127.0.0.1:$port" "$token" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- errand serve log (tail)"
    tail -n 30 "$dir/serve.log"
fi
exit "$status"
