"""Flow control from Python, on both backends: a key's jobs never run two at once (or more
than the task's key_concurrency), a busy key does not hold back other keys, a queue's
global_concurrency holds however many jobs a worker may run, a rate limit holds jobs back,
the limits from app.queue and app.client.set_queue_limits, the views' fields, bad values refused naming the field, and
defer_in refusing a keyed job instead of writing it without its key."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict

import psycopg
import pytest

import errand
from conftest import await_job

FAST = {"poll_interval": "20ms"}


class InFlight:
    """Counts handlers running at once, overall and per key, and the most seen."""

    def __init__(self) -> None:
        self.now: dict = defaultdict(int)
        self.most: dict = defaultdict(int)
        self.total = 0
        self.most_total = 0
        self.runs: list = []

    def enter(self, key: str) -> None:
        self.now[key] += 1
        self.most[key] = max(self.most[key], self.now[key])
        self.total += 1
        self.most_total = max(self.most_total, self.total)
        self.runs.append(("start", key, time.monotonic()))

    def leave(self, key: str) -> None:
        self.runs.append(("end", key, time.monotonic()))
        self.now[key] -= 1
        self.total -= 1


async def await_all(app, ids, timeout: float = 30.0) -> list:
    done = [await await_job(app, i, "succeeded", "failed", timeout=timeout) for i in ids]
    assert all(j.status == "succeeded" for j in done), [(j.id, j.status, j.last_error) for j in done]
    return done


async def test_a_key_never_runs_two_jobs_at_once_and_other_keys_run_beside_it(url):
    app = errand.App(url)
    seen = InFlight()

    @app.task(queue="sync", concurrency_key="program_id")
    async def sync_program(program_id: int, n: int) -> None:
        seen.enter(str(program_id))
        try:
            await asyncio.sleep(0.05)
        finally:
            seen.leave(str(program_id))

    jobs = [sync_program.defer(program_id=p, n=n) for n in range(4) for p in (1, 2, 3)]
    async with app.worker(queues={"sync": 8}, **FAST):
        done = await await_all(app, [e.id for e in jobs])
    assert {j.concurrency_key for j in done} == {"1", "2", "3"}
    assert dict(seen.most) == {"1": 1, "2": 1, "3": 1}, seen.runs
    # Every key's first job is claimed together (the claim offers each key's first jobs), so
    # the three keys ran side by side.
    assert seen.most_total >= 2, seen.runs


async def test_a_busy_key_does_not_hold_back_other_keys(url):
    app = errand.App(url)
    release = asyncio.Event()
    busy_started = asyncio.Event()

    @app.task(queue="sync", concurrency_key="program_id")
    async def sync_program(program_id: str) -> str:
        if program_id == "busy":
            busy_started.set()
            await asyncio.wait_for(release.wait(), 30)
        return program_id

    busy = [sync_program.defer(program_id="busy") for _ in range(3)]
    async with app.worker(queues={"sync": 8}, **FAST):
        await asyncio.wait_for(busy_started.wait(), 20)
        other = await sync_program.defer_async(program_id="other")
        done = await await_job(app, other.id, "succeeded", "failed")
        assert done.status == "succeeded", done
        states = [(await app.aio.job(e.id)).status for e in busy]
        assert sorted(states) == ["queued", "queued", "running"], states
        release.set()
        await await_all(app, [e.id for e in busy])


async def test_the_task_key_concurrency_and_an_explicit_key(url):
    app = errand.App(url)
    seen = InFlight()

    @app.task(queue="sync", concurrency_key="account", key_concurrency=2)
    async def pull(account: str, n: int) -> None:
        seen.enter(account)
        try:
            await asyncio.sleep(0.1)
        finally:
            seen.leave(account)

    jobs = [pull.defer(account="a", n=n) for n in range(6)]
    # A key given with configure replaces the derived one; its limit stays the task's.
    jobs += [pull.configure(concurrency_key="a").defer(account="b", n=n) for n in range(2)]
    async with app.worker(queues={"sync": 8}, **FAST):
        done = await await_all(app, [e.id for e in jobs])
    assert {(j.concurrency_key, j.key_concurrency) for j in done} == {("a", 2)}
    # "b" jobs carry key "a": at most two handlers with either account at once.
    running = 0
    most = 0
    for what, _, _ in sorted(seen.runs, key=lambda r: r[2]):
        running += 1 if what == "start" else -1
        most = max(most, running)
    assert most == 2, seen.runs


async def test_global_concurrency_runs_one_at_a_time_with_a_worker_of_eight(url):
    app = errand.App(url)
    app.queue("serial", global_concurrency=1)
    seen = InFlight()

    @app.task(queue="serial")
    async def step(n: int) -> int:
        seen.enter("all")
        try:
            await asyncio.sleep(0.03)
        finally:
            seen.leave("all")
        return n

    jobs = [step.defer(n=n) for n in range(8)]
    async with app.worker(queues={"serial": 8}, **FAST):
        await await_all(app, [e.id for e in jobs])
        (queue,) = [q for q in await app.aio.stats() if q.name == "serial"]
    assert seen.most_total == 1, seen.runs
    assert (queue.global_concurrency, queue.key_concurrency) == (1, None)


async def test_limits_set_at_run_time_and_the_queue_key_concurrency(url):
    app = errand.App(url)
    seen = InFlight()

    @app.task(queue="bulk", concurrency_key="tenant")
    async def index(tenant: str, n: int) -> None:
        seen.enter(tenant)
        try:
            await asyncio.sleep(0.1)
        finally:
            seen.leave(tenant)

    # No app.queue for "bulk": the worker leaves the stored limits alone.
    await app.aio.set_queue_limits("bulk", key_concurrency=3)
    jobs = [index.defer(tenant="t", n=n) for n in range(6)]
    async with app.worker(queues={"bulk": 8}, **FAST):
        done = await await_all(app, [e.id for e in jobs])
        (queue,) = [q for q in await app.aio.stats() if q.name == "bulk"]
    assert (queue.global_concurrency, queue.key_concurrency) == (None, 3)
    assert {(j.concurrency_key, j.key_concurrency) for j in done} == {("t", None)}
    assert seen.most["t"] == 3, seen.runs

    app.client.set_queue_limits("bulk", global_concurrency=2, rate_limit="100/60s")
    (queue,) = [q for q in app.client.stats() if q.name == "bulk"]
    assert (queue.global_concurrency, queue.key_concurrency, queue.rate_limit) == (2, None, "100/1m"), \
        "all replaced"
    app.client.set_queue_limits("bulk")
    (queue,) = [q for q in app.client.stats() if q.name == "bulk"]
    assert (queue.global_concurrency, queue.key_concurrency, queue.rate_limit) == (None, None, None)


async def test_a_rate_limit_holds_jobs_back_until_it_is_lifted(url):
    app = errand.App(url)
    app.queue("rated", rate_limit="2/1h")

    @app.task(queue="rated")
    async def call_api(n: int) -> int:
        return n

    @app.task(queue="other")
    async def tick() -> None: ...

    jobs = [call_api.defer(n=n) for n in range(3)]
    async with app.worker(**FAST):
        states: dict = {}
        deadline = time.monotonic() + 20
        while sorted(states.values()) != ["queued", "succeeded", "succeeded"]:
            assert time.monotonic() < deadline, states
            states = {e.id: (await app.aio.job(e.id)).status for e in jobs}
            await asyncio.sleep(0.02)
        # The worker keeps claiming (a job of another queue runs, many polls pass), the
        # third job of the rated queue stays queued.
        await await_job(app, (await tick.defer_async()).id, "succeeded")
        await asyncio.sleep(0.3)
        states = {e.id: (await app.aio.job(e.id)).status for e in jobs}
        assert sorted(states.values()) == ["queued", "succeeded", "succeeded"], states
        (queue,) = [q for q in await app.aio.stats() if q.name == "rated"]
        assert queue.rate_limit == "2/1h"
        await app.aio.set_queue_limits("rated")
        await await_all(app, [e.id for e in jobs])


async def test_the_app_owns_the_limits_of_the_queues_it_declares(url):
    app = errand.App(url)
    app.queue("mail", key_concurrency=2)

    @app.task(queue="mail")
    async def send(to: str) -> None: ...

    # Set elsewhere (the CLI, another app): the worker's start writes the app's limits back,
    # the global and rate limits lifted since the app gives none.
    app.client.set_queue_limits("mail", global_concurrency=5, key_concurrency=9, rate_limit="1/1h")
    e = send.defer(to="ada@example.com")
    async with app.worker(**FAST):
        await await_all(app, [e.id])
    (queue,) = [q for q in app.client.stats() if q.name == "mail"]
    assert (queue.global_concurrency, queue.key_concurrency, queue.rate_limit) == (None, 2, None)


def test_the_views_show_the_keys_and_the_task_derives_them(url):
    app = errand.App(url)

    @app.task(queue="sync", concurrency_key="program_id", key_concurrency=2)
    def sync_program(program_id) -> None: ...

    @app.task
    def plain(x: int) -> None: ...

    derived = app.client.job(sync_program.defer(program_id=7).id)
    assert (derived.concurrency_key, derived.key_concurrency) == ("7", 2)
    text = app.client.job(sync_program.defer(program_id="p-1").id)
    assert text.concurrency_key == "p-1"
    # None (or an absent argument) is no key, and so no key_concurrency either.
    none = app.client.job(sync_program.defer(program_id=None).id)
    assert (none.concurrency_key, none.key_concurrency) == (None, None)
    own = app.client.job(
        sync_program.configure(concurrency_key="mine", key_concurrency=5).defer(program_id=1).id
    )
    assert (own.concurrency_key, own.key_concurrency) == ("mine", 5)
    explicit = app.client.job(plain.configure(concurrency_key="k").defer(x=1).id)
    assert (explicit.concurrency_key, explicit.key_concurrency) == ("k", None)
    assert app.client.job(plain.defer(x=1).id).concurrency_key is None
    many = plain.configure(concurrency_key="batch", key_concurrency=3).defer_many([{"x": 1}, {"x": 2}])
    for e in many:
        assert (app.client.job(e.id).concurrency_key, app.client.job(e.id).key_concurrency) == ("batch", 3)
    listed = {j.id: j.concurrency_key for j in app.client.list(limit=100).jobs}
    assert listed[derived.id] == "7"


def test_views_from_older_and_newer_engines_parse():
    from errand._views import build

    job = {
        "id": 1, "queue": "q", "kind": "k", "status": "queued", "derived": None, "priority": 0,
        "attempt": 0, "max_attempts": 4, "run_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
        "updated_at": "2026-01-01T00:00:00Z", "unique_key": None, "reference": None,
        "args": {}, "result": None, "progress": None, "progress_at": None, "last_error": None,
        "timeout_ms": None, "worker_id": None, "lease_expires_at": None,
        "cancel_requested_at": None,
    }
    older = build(errand.Job, job)
    assert (older.concurrency_key, older.key_concurrency) == (None, None)
    newer = build(errand.Job, {**job, "concurrency_key": "a", "key_concurrency": 2, "later": 1})
    assert (newer.concurrency_key, newer.key_concurrency) == ("a", 2)
    counts = dict(queued=0, scheduled=0, running=0, succeeded=0, failed=0, cancelled=0)
    recent = dict(window_ms=1, succeeded=0, failed=0, cancelled=0, throughput_per_min=0.0,
                  duration_avg_ms=None, duration_p95_ms=None, duration_max_ms=None)
    queue = {"name": "q", "paused": False, "paused_at": None, "counts": counts,
             "oldest_ready_run_at": None, "oldest_ready_age_ms": None, "recent": recent}
    assert build(errand.Queue, queue).global_concurrency is None
    q = build(errand.Queue, {**queue, "global_concurrency": 1, "key_concurrency": 4, "rate_limit": "5/1s"})
    assert (q.global_concurrency, q.key_concurrency, q.rate_limit) == (1, 4, "5/1s")


def test_bad_values_are_refused_naming_the_field(url):
    app = errand.App(url)

    @app.task(concurrency_key="program_id")
    def sync_program(program_id: int) -> None: ...

    @app.task
    def plain(x: int) -> None: ...

    with pytest.raises(errand.InvalidError, match=r"`key_concurrency` must be at least 1, got 0"):
        plain.configure(concurrency_key="a", key_concurrency=0).defer(x=1)
    with pytest.raises(errand.InvalidError, match=r"`key_concurrency` is given without a concurrency_key"):
        plain.configure(key_concurrency=2).defer(x=1)
    with pytest.raises(errand.InvalidError, match=r"`key_concurrency` is given without a concurrency_key"):
        # The task derives no key from a None argument.
        sync_program.configure(key_concurrency=2).defer(program_id=None)
    with pytest.raises(errand.InvalidError, match=r"`concurrency_key`"):
        plain.configure(concurrency_key="").defer(x=1)
    with pytest.raises(errand.InvalidError, match=r"`concurrency_key`"):
        plain.configure(concurrency_key="nul\0").defer(x=1)
    with pytest.raises(TypeError, match=r"concurrency_key: expected a string, got int"):
        plain.configure(concurrency_key=7)
    with pytest.raises(ValueError, match=r"key_concurrency: expected an integer"):
        plain.configure(concurrency_key="a", key_concurrency="2").defer(x=1)
    with pytest.raises(errand.InvalidError, match=r"job 0 of the batch: invalid job: `key_concurrency`"):
        plain.configure(concurrency_key="a", key_concurrency=0).defer_many([{"x": 1}, {"x": 2}])
    assert app.client.list().jobs == [], "nothing was written"

    with pytest.raises(errand.InvalidError, match=r"`global_concurrency` must be at least 1, got 0"):
        app.client.set_queue_limits("q", global_concurrency=0)
    with pytest.raises(errand.InvalidError, match=r"`key_concurrency` must be at least 1, got -1"):
        app.client.set_queue_limits("q", key_concurrency=-1)
    with pytest.raises(errand.InvalidError, match=r"queue"):
        app.client.set_queue_limits("no spaces", global_concurrency=1)
    with pytest.raises(errand.InvalidError, match=r"`global_concurrency` must be an integer, got true"):
        app.client.set_queue_limits("q", global_concurrency=True)
    with pytest.raises(errand.InvalidError, match=r"`rate_limit`: `fast` is not a rate limit such as \"100/1m\""):
        app.client.set_queue_limits("q", rate_limit="fast")
    with pytest.raises(errand.InvalidError, match=r"`rate_limit`: `0/1m` .*the count must be at least 1"):
        app.client.set_queue_limits("q", rate_limit="0/1m")
    with pytest.raises(errand.InvalidError, match=r"`rate_limit` must be a string such as \"100/1m\", got 100"):
        app.client.set_queue_limits("q", rate_limit=100)
    assert all(q.global_concurrency is None for q in app.client.stats())


def test_bad_declarations_are_refused_when_declared(tmp_path):
    app = errand.App(str(tmp_path / "d.db"))
    with pytest.raises(ValueError, match=r"task t: key_concurrency must be a positive integer, got 0"):
        app.task(name="t", key_concurrency=0)(lambda x: None)
    with pytest.raises(ValueError, match=r"task t: concurrency_key 'program' is not an argument of the task \(its arguments: program_id\)"):
        app.task(name="t", concurrency_key="program")(lambda program_id: None)
    with pytest.raises(ValueError, match=r"task t: concurrency_key must name an argument"):
        app.task(name="t", concurrency_key="")(lambda x: None)
    with pytest.raises(ValueError, match=r"concurrency_key 'ctx' is not an argument"):
        app.task(name="t", concurrency_key="ctx")(lambda ctx, x: None)
    app.task(name="kw", concurrency_key="anything")(lambda **kw: None)  # **kwargs take any name
    with pytest.raises(ValueError, match=r"queue q: `global_concurrency` must be at least 1, got 0"):
        app.queue("q", global_concurrency=0)
    with pytest.raises(ValueError, match=r"queue q: `key_concurrency` must be at least 1, got -2"):
        app.queue("q", key_concurrency=-2)
    with pytest.raises(ValueError, match=r"queue q: `key_concurrency` must be an integer"):
        app.queue("q", key_concurrency="3")
    with pytest.raises(ValueError, match=r"queue q: `rate_limit`: `5/2d` .*the window must be from 1ms to 1d"):
        app.queue("q", rate_limit="5/2d")
    with pytest.raises(ValueError, match=r"queue q: `global_concurrency` must be an integer, got true"):
        app.queue("q", global_concurrency=True)
    with pytest.raises(ValueError, match=r"queue no spaces"):
        app.queue("no spaces", global_concurrency=1)
    assert app.queue_limits == {}
    assert sorted(app.tasks) == ["kw"]


def _sql_connection(url):
    if url.startswith("postgres"):
        return psycopg.connect(url)
    conn = sqlite3.connect(url, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_defer_in_refuses_a_keyed_job_rather_than_drop_its_key(url):
    app = errand.App(url)

    @app.task(queue="sync", concurrency_key="program_id")
    def sync_program(program_id) -> None: ...

    @app.task
    def plain(x: int) -> None: ...

    app.client.stats()  # migrated
    conn = _sql_connection(url)
    try:
        with pytest.raises(errand.InvalidError, match=(
            r"defer_in: invalid job: `concurrency_key` \(derived by task sync_program from its "
            r"argument `program_id`\) is not supported by Errand's SQL enqueue.*"
            r"defer keyed jobs with defer or defer_async"
        )):
            sync_program.defer_in(conn, program_id=7)
        with pytest.raises(errand.InvalidError, match=(
            r"`concurrency_key` \(given with configure\(concurrency_key=\.\.\.\)\) is not "
            r"supported by Errand's SQL enqueue"
        )):
            plain.configure(concurrency_key="k").defer_in(conn, x=1)
        # Without a key (the argument None, or a task without one) the job is written.
        a = sync_program.defer_in(conn, program_id=None)
        b = plain.defer_in(conn, x=2)
        conn.commit()
    finally:
        conn.close()
    jobs = app.client.list(limit=100).jobs
    assert sorted(j.id for j in jobs) == sorted([a.id, b.id]), jobs
    assert all(j.concurrency_key is None for j in jobs)


async def test_defer_in_async_refuses_a_keyed_job(pg_url):
    # Async connections: psycopg's, on PostgreSQL.
    url = pg_url
    app = errand.App(url)

    @app.task(concurrency_key="program_id")
    def sync_program(program_id) -> None: ...

    await app.aio.stats()
    async with await psycopg.AsyncConnection.connect(url) as conn:
        with pytest.raises(errand.InvalidError, match=r"`concurrency_key` \(derived by task"):
            await sync_program.defer_in_async(conn, program_id=7)
        await conn.rollback()
    assert (await app.aio.list()).jobs == []
