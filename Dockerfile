# The `errand` binary in a small image: `errand serve` by default, any command otherwise.
#
#   docker build -t errand .            # or: podman build -t errand .
#   docker run -v errand-data:/data -p 7070:7070 -e ERRAND_SERVER_TOKENS=admin:s3cret errand
#   docker run errand --database postgres://... worker --queues email
#
# Jobs live in /data/errand.db (a volume) unless ERRAND_DATABASE_URL points elsewhere. The
# API listens on 0.0.0.0:7070, so at least one token is required (ERRAND_SERVER_TOKENS or
# [[server.tokens]] in a mounted errand.toml). See docs/deploy.md.

ARG RUST_VERSION=1.95

# --- build: a release binary (stripped by the release profile) ---------------------------
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not download and build them again.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY examples/embed examples/embed
# No .git in the build context (.dockerignore): the commit comes from a build argument.
ARG ERRAND_GIT_COMMIT=unknown
ENV ERRAND_GIT_COMMIT=${ERRAND_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p errand-cli \
    && install -m 0755 target/release/errand /usr/local/bin/errand

# --- runtime: Debian slim, tini as PID 1, a non-root user -----------------------------------
FROM docker.io/library/debian:bookworm-slim AS runtime
# ca-certificates: the system roots for TLS to PostgreSQL and https:// tasks.
# tini: PID 1 forwards SIGTERM to errand and reaps what exits under it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin errand \
    && mkdir -p /data /etc/errand \
    && chown errand:errand /data
COPY --from=build /usr/local/bin/errand /usr/local/bin/errand
USER errand
WORKDIR /data
VOLUME ["/data"]
ENV ERRAND_DATABASE_URL=/data/errand.db \
    ERRAND_SERVER_LISTEN=0.0.0.0:7070
EXPOSE 7070
# errand drains on SIGTERM: stops claiming, lets running jobs finish within
# workers.shutdown_grace (30s), hands the rest back. Give the container longer than that to
# stop (docker stop -t 45, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["errand", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "errand"]
CMD ["serve"]
