"""Fixtures of the Python package's tests: each test gets its own database on each backend,
a fresh SQLite file or a fresh PostgreSQL database on the server at ERRAND_TEST_PG_URL
(default postgres://postgres@127.0.0.1:5432, user postgres, trust), dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Iterator

import pytest

PG_SERVER = os.environ.get("ERRAND_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432")


def _admin():
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - the venv of scripts/test has it
        raise RuntimeError("pip install psycopg (see crates/errand-py/requirements-test.txt)") from e
    try:
        return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_SERVER}: start it (scripts/test does) or set "
            "ERRAND_TEST_PG_URL"
        ) from e


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of its own."""
    name = f"errand_py_{uuid.uuid4().hex[:16]}"
    with _admin() as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with _admin() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path) -> Iterator[str]:
    """The database of one test, on each backend in turn."""
    if request.param == "sqlite":
        yield str(tmp_path / "errand.db")
    else:
        yield request.getfixturevalue("pg_url")


def wait_job(app, job_id: int, *states: str, timeout: float = 20.0):
    """The job once its status (or derived state) is one of ``states``; fails after
    ``timeout`` seconds with the job as it is."""
    deadline = time.monotonic() + timeout
    while True:
        job = app.client.job(job_id)
        if job is not None and (job.status in states or job.derived in states):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}")
        time.sleep(0.02)


async def await_job(app, job_id: int, *states: str, timeout: float = 20.0):
    """As ``wait_job``, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        job = await app.aio.job(job_id)
        if job is not None and (job.status in states or job.derived in states):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}")
        await asyncio.sleep(0.02)
