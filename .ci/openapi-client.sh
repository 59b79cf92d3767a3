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
venv=target/openapi-client-venv
version=0.29.1
if ! "$venv/bin/openapi-python-client" --version 2>/dev/null | grep -q "$version"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-python-client==$version"
fi

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="client-$RANDOM$RANDOM"
ERRAND_SERVER_LISTEN="127.0.0.1:$port" ERRAND_SERVER_TOKENS="admin:$token" \
    "$errand" --database "$dir/jobs.db" serve >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
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
