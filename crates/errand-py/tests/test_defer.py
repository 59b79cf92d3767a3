"""Deferring jobs on both backends: the task's settings applied by the engine's catalog, the
per-job settings of configure(), unique keys under concurrent defers, arguments refused
with an error naming them, and the GIL released while a defer waits on the database."""

from __future__ import annotations

import asyncio
import datetime
import math
import subprocess
import sys
import threading
import time

import pytest

import errand


def test_task_settings_are_the_engine_defaults_of_the_kind(url):
    app = errand.App(url)

    @app.task(queue="email", max_attempts=5, timeout="10m")
    async def send_email(to: str, subject: str = "hi") -> None: ...

    @app.task
    def plain() -> None: ...

    job = app.client.job(send_email.defer(to="ada@example.com").id)
    assert (job.kind, job.queue, job.max_attempts, job.timeout_ms) == ("send_email", "email", 5, 600_000)
    assert job.args == {"to": "ada@example.com"}
    job = app.client.job(plain.defer().id)
    assert (job.queue, job.max_attempts, job.timeout_ms) == ("default", 4, 1_800_000)


def test_configure_sets_delay_reference_priority_queue_and_overrides(url):
    app = errand.App(url)

    @app.task(queue="email")
    def welcome(user_id: int) -> None: ...

    e = welcome.configure(
        delay="30s",
        reference=("user", 42),
        priority=5,
        queue="email-bulk",
        max_attempts=2,
        timeout=datetime.timedelta(minutes=1),
    ).defer(user_id=42)
    job = app.client.job(e.id)
    assert job.derived == "scheduled"
    assert (job.run_at - job.created_at).total_seconds() == pytest.approx(30, abs=1)
    assert job.reference == errand.Reference(type="user", id="42")
    assert (job.priority, job.queue, job.max_attempts, job.timeout_ms) == (5, "email-bulk", 2, 60_000)
    assert [j.id for j in app.client.find_by_reference("user", 42)] == [e.id]
    assert app.client.list(reference=("user", "42")).jobs[0].id == e.id
    assert app.client.list(state="scheduled").jobs[0].id == e.id


def test_unique_keys_hold_under_32_concurrent_defers_from_threads(url):
    app = errand.App(url)

    @app.task
    def welcome(user_id: int) -> None: ...

    welcome.defer(user_id=0)  # opened and migrated before the race
    barrier = threading.Barrier(32)
    results: list = []

    def defer() -> None:
        barrier.wait()
        results.append(welcome.configure(unique_key="welcome:42").defer(user_id=42))

    threads = [threading.Thread(target=defer) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 32
    assert sum(r.inserted for r in results) == 1, results
    assert len({r.id for r in results}) == 1, "every caller got the one job's id"
    assert len(app.client.list(kind="welcome", limit=100).jobs) == 2


async def test_unique_keys_hold_under_32_concurrent_async_defers(url):
    app = errand.App(url)

    @app.task
    async def sync_account(account: str) -> None: ...

    await sync_account.defer_async(account="warm-up")
    results = await asyncio.gather(
        *(sync_account.configure(unique_key="sync:acme").defer_async(account="acme") for _ in range(32))
    )
    assert sum(r.inserted for r in results) == 1, results
    assert len({r.id for r in results}) == 1


def test_bad_arguments_are_refused_at_defer_naming_them(url):
    app = errand.App(url)

    @app.task
    def notify(user_id: int, when: str = "now") -> None: ...

    with pytest.raises(errand.NotSerializable, match=r"notify: argument `when` is not JSON-serialisable \(datetime"):
        notify.defer(user_id=1, when=datetime.datetime.now())
    with pytest.raises(errand.NotSerializable, match="argument `user_id`"):
        notify.defer(user_id=math.nan)
    with pytest.raises(errand.NotSerializable, match="argument `user_id`"):
        notify.defer(user_id={"nested": {1, 2}})
    with pytest.raises(TypeError, match=r"notify: got an unexpected keyword argument 'user'"):
        notify.defer(user=1)
    with pytest.raises(TypeError, match=r"missing a required argument: 'user_id'"):
        notify.defer()
    with pytest.raises(ValueError, match=r"delay: invalid duration `soon`"):
        notify.configure(delay="soon").defer(user_id=1)
    with pytest.raises(TypeError, match=r"reference: expected a \(type, id\) tuple"):
        notify.configure(reference="user:1").defer(user_id=1)
    with pytest.raises(errand.InvalidError, match="max_attempts"):
        notify.configure(max_attempts=0).defer(user_id=1)
    with pytest.raises(errand.InvalidError, match="queue"):
        notify.configure(queue="no spaces please").defer(user_id=1)
    assert app.client.list().jobs == [], "nothing was written"


def test_bad_task_declarations_are_refused_when_declared(tmp_path):
    app = errand.App(str(tmp_path / "d.db"))
    with pytest.raises(ValueError, match=r"task t: timeout: invalid duration `ten minutes`"):
        app.task(name="t", timeout="ten minutes")(lambda: None)
    with pytest.raises(ValueError, match="max_attempts must be a positive integer"):
        app.task(name="t", max_attempts=0)(lambda: None)
    with pytest.raises(ValueError, match=r"backoff.jitter"):
        app.task(name="t", backoff=errand.Backoff(jitter=3))(lambda: None)


def test_defer_many_writes_every_job_or_none(url):
    app = errand.App(url)

    @app.task(queue="bulk")
    def index(doc: int) -> None: ...

    out = index.defer_many({"doc": n} for n in range(50))
    assert len(out) == 50 and all(e.inserted for e in out)
    assert app.client.list(kind="index", limit=100).jobs[-1].queue == "bulk"
    with pytest.raises(errand.NotSerializable, match="argument `doc`"):
        index.defer_many([{"doc": 1}, {"doc": object()}])
    with pytest.raises(errand.InvalidError, match="job 0 of the batch: invalid job: `queue`"):
        index.configure(queue="no spaces").defer_many([{"doc": 1}, {"doc": 2}])
    assert len(app.client.list(kind="index", limit=100).jobs) == 50, "nothing more was written"


def test_the_native_boundary_passes_values_on_for_the_engine_to_refuse(url):
    # The package's own checks (to_ms, the reference tuple) come first; the native calls here
    # are what a caller past them reaches. Each value arrives at the engine as given and is
    # refused with the engine's message, never clamped, defaulted or dropped.
    import json

    app = errand.App(url)

    @app.task
    def notify(user_id: int) -> None: ...

    native = app._native_client()

    def enqueue(**fields):
        return native.call("enqueue", json.dumps({"kind": "notify", "args": {"user_id": 1}, **fields}))

    with pytest.raises(errand.InvalidError, match=r"`delay_ms` must not be negative, got -5"):
        enqueue(delay_ms=-5)
    with pytest.raises(errand.InvalidError, match=r"`timeout_ms` must not be negative, got -1"):
        enqueue(timeout_ms=-1)
    with pytest.raises(errand.InvalidError, match=r"`reference_id` is required when reference_type"):
        enqueue(reference_type="user")
    with pytest.raises(errand.InvalidError, match=r"`reference_type` is required when reference_id"):
        enqueue(reference_id="7")
    with pytest.raises(errand.InvalidError, match=r"`delay_ms` must not be negative"):
        native.call("prepare", json.dumps({"kind": "notify", "delay_ms": -5}))
    assert app.client.list().jobs == [], "nothing was written"
    with pytest.raises(ValueError, match=r"ids: expected a list of job ids"):
        native.call("cancel", json.dumps({"ids": [1, "2"]}))
    with pytest.raises(ValueError, match=r"ids: expected a list of job ids"):
        native.call("retry", json.dumps({"ids": [1.5]}))
    for limit in (-1, 0, 501):
        with pytest.raises(errand.InvalidError, match=rf"`limit` must be between 1 and 500, got {limit}"):
            app.client.list(limit=limit)
    assert app.client.list(limit=500).jobs == []


#: Run in another process: takes what an insert into the jobs table needs (PostgreSQL: the
#: table in EXCLUSIVE mode; SQLite: the file's write lock, for less than the store's 5 s busy
#: timeout), says so, holds it for HOLD seconds, lets go. Another process, so that letting go
#: needs nothing of this one: a defer holding the GIL makes the test fail, not hang.
_LOCKER = """
import sys, time
url, hold = sys.argv[1], float(sys.argv[2])
if url.startswith("postgres"):
    import psycopg
    conn = psycopg.connect(url)
    conn.execute("LOCK TABLE errand_jobs IN EXCLUSIVE MODE")
else:
    import sqlite3
    conn = sqlite3.connect(url, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(hold)
conn.rollback()
conn.close()
"""

HOLD = 2.0


def test_defer_releases_the_gil_while_it_waits_on_the_database(url):
    app = errand.App(url)

    @app.task
    def ping(n: int) -> None: ...

    ping.defer(n=0)  # the database opened and migrated before the lock
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, url, str(HOLD)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        window: dict = {}

        def defer() -> None:
            window["start"] = time.monotonic()
            ping.defer(n=1)  # blocks on the other process's lock
            window["end"] = time.monotonic()

        blocked = threading.Thread(target=defer)
        blocked.start()
        # Pure Python on this thread meanwhile: it runs only while no thread holds the GIL.
        stamps, n = [], 0
        while blocked.is_alive():
            n += 1
            if n % 1000 == 0:
                stamps.append(time.monotonic())
        blocked.join()
    finally:
        locker.wait(timeout=30)
    start, end = window["start"], window["end"]
    assert end - start >= HOLD / 2, f"the defer did not wait on the lock ({end - start:.2f}s): the test shows nothing"
    middle = [t for t in stamps if start + 0.25 * (end - start) <= t <= end - 0.25 * (end - start)]
    assert len(middle) >= 10, (
        f"this thread ran {len(middle)} times in the middle half of the defer's "
        f"{end - start:.2f}s wait: the defer held the GIL while it waited"
    )
    assert len(app.client.list(kind="ping").jobs) == 2
