#!/usr/bin/env bash
# The Python package (crates/errand-py): a venv of its own (target/python-venv) with the pinned
# test requirements, the package built into it with maturin (the workspace's target dir), then
# every pytest file on both backends (SQLite files; a fresh database per test on the PostgreSQL
# at 127.0.0.1:5432, user postgres). Needs python3 with venv, cargo and PostgreSQL up (scripts/test
# sees to all three).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=crates/errand-py
venv=${ERRAND_PY_VENV:-target/python-venv}
stamp="$venv/.requirements"
if ! cmp -s "$pkg/requirements-test.txt" "$stamp" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pkg/requirements-test.txt"
    cp "$pkg/requirements-test.txt" "$stamp"
fi
# maturin develop installs into the venv it is given; CARGO_INCREMENTAL=0 as every build here.
( cd "$pkg" && VIRTUAL_ENV="$PWD/../../$venv" CARGO_INCREMENTAL=0 \
    "../../$venv/bin/maturin" develop --quiet --locked )
cd "$pkg"
exec "../../$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
