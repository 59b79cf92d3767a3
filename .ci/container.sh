#!/usr/bin/env bash
# Builds the Dockerfile with podman and runs a job through the image: the image's own
# `errand serve` (non-root, /data volume, tini, HEALTHCHECK) runs a command task enqueued over
# its HTTP API, `errand health` passes inside it, and `podman stop` drains it gracefully.
#
#   bash .ci/container.sh
#
# This machine has podman but no route to a container registry, so the two base images the
# Dockerfile names are made here first, from Debian's packages, under the same names:
# debian:bookworm-slim from debootstrap, and rust:<version>-slim-bookworm from it plus this
# machine's Rust toolchain and gcc. Everything after the FROM lines is the Dockerfile as
# written. Containers run with runc and lowered rlimits (crun refuses this host's hybrid
# cgroups, and the sandbox may not raise rlimits). The stand-in builder image trusts this
# machine's CA bundle, so crates.io is reachable from the build wherever it is from here.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\n== container: %s\n' "$*"; }

export DEBIAN_FRONTEND=noninteractive
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
run_opts=(--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
# --format docker: an OCI image has no HEALTHCHECK field (buildah drops it), a Docker one does.
build_opts=(--pull=never --isolation=chroot --format docker)
rust_version=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
toolchain=$(rustc --print sysroot)
cache=target/container
mkdir -p "$cache"

if ! podman image exists docker.io/library/debian:bookworm-slim; then
    log "making debian:bookworm-slim with debootstrap"
    if [ ! -f "$cache/bookworm.tar" ]; then
        root=$(mktemp -d)
        debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
        tar -C "$root" -cf "$cache/bookworm.tar" .
        rm -rf "$root"
    fi
    podman import "$cache/bookworm.tar" docker.io/library/debian:bookworm-slim >/dev/null
fi
if ! podman image exists "docker.io/library/rust:${rust_version}-slim-bookworm"; then
    log "making rust:${rust_version}-slim-bookworm from this machine's toolchain ($toolchain)"
    ctx=$(mktemp -d)
    mkdir "$ctx/rust"
    cp -a "$toolchain/bin" "$toolchain/lib" "$toolchain/libexec" "$ctx/rust/"
    rm -rf "$ctx/rust/lib/rustlib/"*/analysis
    # This machine's trust store: where HTTPS goes through an inspecting proxy, cargo inside
    # the build must trust what cargo outside does.
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
    cat >"$ctx/Containerfile" <<'CONTAINERFILE'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && cargo --version
CONTAINERFILE
    podman build "${build_opts[@]}" -t "docker.io/library/rust:${rust_version}-slim-bookworm" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

log "podman build -t errand:ci . (the Dockerfile; release build cached between runs)"
start=$(date +%s)
podman rmi -f localhost/errand:ci >/dev/null 2>&1 || true # a tag left from an earlier run proves nothing
build_log=$(mktemp)
if ! podman build "${build_opts[@]}" \
    --build-arg "ERRAND_GIT_COMMIT=$(git rev-parse --short=12 HEAD)" \
    -t localhost/errand:ci . >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    echo "podman build failed" >&2
    exit 1
fi
grep -E '^(STEP|COMMIT|Successfully)' "$build_log" || true
rm -f "$build_log"
podman image exists localhost/errand:ci || { echo "the image was not built" >&2; exit 1; }
# What the Dockerfile promises an orchestrator, read back from the built image.
config=$(podman image inspect localhost/errand:ci --format '{{.Config.StopSignal}}|{{.Config.ExposedPorts}}|{{.Config.Volumes}}|{{.Config.User}}|{{.Config.Entrypoint}}|{{.Config.Cmd}}')
healthcheck=$(podman image inspect localhost/errand:ci --format '{{.HealthCheck.Test}}' 2>/dev/null || true)
[ -n "$healthcheck" ] && [ "$healthcheck" != "<no value>" ] \
    || healthcheck=$(podman image inspect localhost/errand:ci --format '{{.Config.Healthcheck.Test}}' 2>/dev/null || true)
echo "image: $config; healthcheck: $healthcheck"
case $config in SIGTERM\|*7070/tcp*\|*/data*\|errand\|*tini*errand*\|*serve*) ;; *) echo "unexpected image config: $config" >&2; exit 1 ;; esac
case $healthcheck in *errand*health*) ;; *) echo "the image has no 'errand health' HEALTHCHECK: $healthcheck" >&2; exit 1 ;; esac
echo "built in $(( $(date +%s) - start ))s; size $(podman image inspect localhost/errand:ci --format '{{.Size}}') bytes"

# The shipped binary is stripped (the release profile): no symbol table, no debug info.
probe=$(podman create localhost/errand:ci)
bin=$(mktemp)
podman cp "$probe:/usr/local/bin/errand" "$bin" >/dev/null
podman rm "$probe" >/dev/null
if readelf -S "$bin" | grep -qE '\.symtab|\.debug_'; then
    echo "the image's errand binary is not stripped" >&2; exit 1
fi
echo "binary: $(stat -c %s "$bin") bytes, stripped"
rm -f "$bin"

name=errand-ci-$$
dir=$(mktemp -d)
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman volume rm -f "$name-data" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
source .ci/serve-lib.sh
port=$(free_port)
cat >"$dir/errand.toml" <<'TOML'
[workers]
shutdown_grace = "5s"
[tasks.hello]
command = ["sh", "-c", "cat >/dev/null; echo \"{\\\"user\\\": \\\"$(id -un)\\\"}\""]
TOML
chmod 644 "$dir/errand.toml"

log "podman run: errand serve on the /data volume, API on port $port"
podman run "${run_opts[@]}" -d --name "$name" -p "127.0.0.1:$port:7070" \
    -v "$name-data:/data" -v "$dir/errand.toml:/etc/errand/errand.toml:ro" \
    -e ERRAND_SERVER_TOKENS=admin:ci-secret -e ERRAND_CONFIG=/etc/errand/errand.toml \
    localhost/errand:ci >/dev/null
fail() { echo "container: $*" >&2; podman logs "$name" 2>&1 | tail -n 30 >&2; exit 1; }
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || fail "no /health answer"

id=$(curl -sf "http://127.0.0.1:$port/v1/jobs" -H 'authorization: Bearer ci-secret' \
    -H 'content-type: application/json' -d '{"kind":"hello","args":{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
status=""
for _ in $(seq 1 100); do
    status=$(curl -sf "http://127.0.0.1:$port/v1/jobs/$id" -H 'authorization: Bearer ci-secret' \
        | python3 -c 'import json,sys; j=json.load(sys.stdin); j=j.get("job", j); print(j["status"], json.dumps(j.get("result")))')
    case $status in succeeded*|failed*) break ;; esac
    sleep 0.2
done
case $status in *'"user": "errand"'*) echo "job $id: $status" ;; *) fail "job $id did not succeed as user errand: $status" ;; esac

log "errand health inside the container, and the image's HEALTHCHECK"
podman exec "$name" errand health || fail "errand health failed inside the container"
podman healthcheck run "$name" >/dev/null 2>&1 && echo "HEALTHCHECK: healthy" \
    || echo "HEALTHCHECK could not run here (needs systemd timers); errand health above is the same check"
[ "$(podman exec "$name" id -u)" != 0 ] || fail "runs as root"
podman exec "$name" test -s /data/errand.db || fail "no /data/errand.db in the volume"

log "podman stop: a graceful drain (exit 0 within the grace)"
podman stop -t 20 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
podman logs "$name" 2>&1 | tail -n 3
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
echo "container smoke test passed"
