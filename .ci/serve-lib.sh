# Sourced by the CI scripts that drive a real `errand serve` from Python tools (schemathesis.sh,
# openapi-client.sh): a pinned tool in a venv of its own, a free port, and `errand serve` on a
# fresh SQLite file with an admin token, stopped and removed when the script exits.

# pinned_venv VENV PACKAGE VERSION COMMAND: VENV holds PACKAGE==VERSION (whose COMMAND prints it).
pinned_venv() {
    local venv=$1 package=$2 version=$3 command=$4
    if ! "$venv/bin/$command" --version 2>/dev/null | grep -q "$version"; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
    fi
}

# free_port: a loopback port nobody listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# serve_sqlite ERRAND NAME: starts ERRAND serve on $dir/jobs.db and waits for /health; sets
# dir, port, token (admin, "NAME-<random>") and pid.
serve_sqlite() {
    dir=$(mktemp -d)
    port=$(free_port)
    token="$2-$RANDOM$RANDOM"
    ERRAND_SERVER_LISTEN="127.0.0.1:$port" ERRAND_SERVER_TOKENS="admin:$token" \
        "$1" --database "$dir/jobs.db" serve >"$dir/serve.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
