"""``ctx.progress(value)`` on both backends: from async and sync handlers, seen on the job
while it runs and kept after it finishes, refused values raising at the call, and a report
that never waits for the database (made while another connection holds the write lock)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time

import pytest

import errand
from conftest import await_job, wait_job

FAST = {"poll_interval": "20ms"}


async def test_an_async_handler_reports_and_the_job_shows_it(url):
    app = errand.App(url)
    go = asyncio.Event()
    refused: dict = {}

    @app.task
    async def import_rows(ctx: errand.JobContext, rows: int) -> int:
        for done in range(1, rows + 1):
            ctx.progress({"done": done, "total": rows, "message": "importing"})
        with pytest.raises(errand.NotSerializable) as not_json:
            ctx.progress({"at": object()})
        with pytest.raises(errand.InvalidError) as too_big:
            ctx.progress("x" * 9000)
        refused["not_json"] = str(not_json.value)
        refused["too_big"] = str(too_big.value)
        await go.wait()
        ctx.progress({"done": rows, "total": rows, "message": "done", "api_token": "tk-1"})
        return rows

    job = await import_rows.defer_async(rows=200)
    async with app.worker(**FAST):
        running = await _until(app, job.id, lambda j: j.progress == {"done": 200, "total": 200, "message": "importing"})
        assert running.status == "running"
        assert running.progress_at is not None
        go.set()
        done = await await_job(app, job.id, "succeeded", "failed")
    assert done.status == "succeeded", done
    # The last report before returning, as stored (the client reads as an admin).
    assert done.progress == {"done": 200, "total": 200, "message": "done", "api_token": "tk-1"}
    assert done.progress_at >= running.progress_at
    assert refused["not_json"].startswith("`progress` is not JSON (dict)"), refused
    assert "the limit is 8192 bytes (8 KiB)" in refused["too_big"], refused


async def _until(app, job_id, predicate, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = await app.aio.job(job_id)
        if job is not None and predicate(job):
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} never matched: {job}")
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def _write_lock(url: str, job_id: int):
    """Another connection holding what a progress write needs: the SQLite file's write lock
    (an exclusive transaction), or the job's row on PostgreSQL (``FOR UPDATE``)."""
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute("SELECT id FROM errand_jobs WHERE id = %s FOR UPDATE", (job_id,))
            yield
            conn.rollback()
    else:
        conn = sqlite3.connect(url, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def test_a_sync_handler_reports_without_waiting_for_the_database(url):
    app = errand.App(url)
    start, reported, go = threading.Event(), threading.Event(), threading.Event()

    @app.task
    def copy_files(ctx: errand.JobContext, files: int) -> str:
        start.wait(30)
        for done in range(1, files + 1):
            ctx.progress({"done": done, "total": files})
        reported.set()
        go.wait(30)
        return "copied"

    job = copy_files.defer(files=50)
    with app.start_worker(**FAST):
        wait_job(app, job.id, "running")
        with _write_lock(url, job.id):
            start.set()
            # Every report is taken while the database refuses the write: none waited for it.
            assert reported.wait(20), "ctx.progress waited for the database"
        # Once the lock is gone, the last report is written while the job still runs.
        seen = _wait_progress(app, job.id, {"done": 50, "total": 50})
        assert seen.status == "running"
        go.set()
        done = wait_job(app, job.id, "succeeded", "failed")
    assert done.status == "succeeded", done
    assert done.progress == {"done": 50, "total": 50}


def _wait_progress(app, job_id: int, value, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        job = app.client.job(job_id)
        if job.progress == value:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never showed {value}: {job}")
        time.sleep(0.02)


def test_a_new_attempt_starts_without_progress(url):
    app = errand.App(url)
    seen: list = []

    @app.task(max_attempts=2, backoff=errand.Backoff(base="10ms", cap="10ms", jitter=0))
    def flaky(ctx: errand.JobContext) -> str:
        seen.append(app.client.job(ctx.id).progress)
        ctx.progress({"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return "ok"

    job = flaky.defer()
    with app.start_worker(**FAST):
        done = wait_job(app, job.id, "succeeded", "failed")
    assert done.status == "succeeded", done
    assert seen == [None, None], "each attempt starts with no progress"
    assert done.progress == {"attempt": 2}
