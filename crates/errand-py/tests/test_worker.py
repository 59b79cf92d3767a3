"""Handlers run by the engine's pool, on both backends: async and sync, results, retries with
backoff, permanent failures, RetryAfter, cancel and timeout reaching the handler, and the
worker run on a thread of its own."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

import errand
from conftest import await_job, wait_job

FAST = {"poll_interval": "20ms"}
# A running job learns of a cancel at its pool's next heartbeat, a fraction of the lease.
SHORT_LEASE = {"poll_interval": "20ms", "lease": "2s"}


async def test_async_and_sync_handlers_store_their_results(url):
    app = errand.App(url)

    @app.task(queue="email")
    async def send_email(ctx: errand.JobContext, to: str) -> dict:
        await asyncio.sleep(0.01)
        return {"sent": to, "job": ctx.id, "attempt": ctx.attempt, "of": ctx.max_attempts}

    @app.task
    def add(a: int, b: int) -> int:
        assert threading.current_thread() is not threading.main_thread()
        return a + b

    @app.task
    async def nothing() -> None:
        return None

    e = await send_email.defer_async(to="ada@example.com")
    a = add.defer(a=2, b=3)
    n = nothing.defer()
    async with app.worker(**FAST) as w:
        assert w.queues == {"email": 10, "default": 10}
        done = await await_job(app, e.id, "succeeded", "failed")
        assert done.result == {"sent": "ada@example.com", "job": e.id, "attempt": 1, "of": 4}
        assert done.queue == "email"
        assert (await await_job(app, a.id, "succeeded", "failed")).result == 5
        assert (await await_job(app, n.id, "succeeded", "failed")).result is None


def test_a_failure_is_retried_with_the_task_backoff_then_succeeds(url):
    app = errand.App(url)
    started: list = []

    @app.task(max_attempts=3, backoff=errand.Backoff(base="300ms", cap="300ms", jitter=0))
    def flaky(ctx: errand.JobContext) -> str:
        started.append(time.monotonic())
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return "third time lucky"

    job = flaky.defer()
    with app.start_worker(**FAST):
        done = wait_job(app, job.id, "succeeded", "failed")
    assert done.status == "succeeded", done
    assert done.attempt == 3 and done.result == "third time lucky"
    gaps = [b - a for a, b in zip(started, started[1:])]
    assert all(g >= 0.28 for g in gaps), f"the backoff (300 ms) was not waited: {gaps}"
    events = app.client.job_with_events(job.id).events
    errors = [e.message for e in events if e.message and "ConnectionError" in e.message]
    assert len(errors) == 2, [(e.kind, e.message) for e in events]
    assert "Traceback (most recent call last)" in errors[0], "the traceback is the job's error"
    assert "attempt 1 failed" in errors[0]


def test_permanent_fails_at_once_and_retry_after_sets_the_next_run(url):
    app = errand.App(url)

    @app.task(max_attempts=5)
    def bounce(address: str) -> None:
        raise errand.Permanent(f"{address} bounced")

    @app.task(max_attempts=2, backoff=errand.Backoff(base="1h", cap="1h"))
    def limited(ctx: errand.JobContext) -> int:
        if ctx.attempt == 1:
            raise errand.RetryAfter(0.4, "rate limited")
        return ctx.attempt

    @app.task(max_attempts=1)
    def not_json() -> object:
        return object()

    b = bounce.defer(address="ada@example.com")
    r = limited.defer()
    x = not_json.defer()
    t0 = time.monotonic()
    with app.start_worker(**FAST):
        failed = wait_job(app, b.id, "failed", "succeeded")
        retried = wait_job(app, r.id, "succeeded", "failed")
        odd = wait_job(app, x.id, "failed", "succeeded")
    assert failed.status == "failed" and failed.attempt == 1, failed
    assert "errand._errors.Permanent: ada@example.com bounced" in failed.last_error
    assert retried.status == "succeeded" and retried.result == 2, retried
    assert time.monotonic() - t0 >= 0.4, "RetryAfter's delay, not the task's 1 h backoff"
    assert odd.status == "failed" and "not JSON" in odd.last_error, odd


async def test_cancel_reaches_an_async_handler(url):
    app = errand.App(url)
    seen: dict = {}
    entered = asyncio.Event()

    @app.task
    async def long_report(ctx: errand.JobContext) -> str:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen["reason"] = ctx.stop_reason
            seen["cancelled"] = ctx.cancelled
            raise
        return "finished"

    job = await long_report.defer_async()
    async with app.worker(**SHORT_LEASE):
        await asyncio.wait_for(entered.wait(), 20)
        outcomes = await app.aio.cancel(job.id, reason="no longer needed")
        assert outcomes == [{"outcome": "cancel_requested", "id": job.id}]
        done = await await_job(app, job.id, "cancelled", "succeeded", "failed")
    assert done.status == "cancelled", done
    assert seen == {"reason": "cancelled", "cancelled": True}


def test_cancel_reaches_a_sync_handler_through_its_event(url):
    app = errand.App(url)
    seen: dict = {}
    entered = threading.Event()

    @app.task
    def export(ctx: errand.JobContext) -> str:
        entered.set()
        fired = ctx.cancel_event.wait(30)
        seen["fired"], seen["reason"] = fired, ctx.stop_reason
        return "stopped early"

    job = export.defer()
    with app.start_worker(**SHORT_LEASE):
        assert entered.wait(20)
        app.client.cancel(job.id)
        done = wait_job(app, job.id, "cancelled", "succeeded", "failed")
    assert done.status == "cancelled", done
    assert seen == {"fired": True, "reason": "cancelled"}


async def test_a_timeout_stops_the_handler_and_fails_the_attempt(url):
    app = errand.App(url)
    seen: dict = {}

    @app.task(timeout="300ms", max_attempts=1)
    async def slow(ctx: errand.JobContext) -> None:
        seen["timeout"] = ctx.timeout
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["reason"] = ctx.stop_reason
            raise

    job = await slow.defer_async()
    t0 = time.monotonic()
    async with app.worker(**FAST):
        done = await await_job(app, job.id, "failed", "succeeded")
    assert done.status == "failed", done
    assert "timed out" in done.last_error, done.last_error
    assert seen == {"timeout": 0.3, "reason": "timeout"}
    assert time.monotonic() - t0 < 10


def test_a_thread_worker_starts_and_stops_for_sync_apps(url):
    app = errand.App(url)

    @app.task
    def square(n: int) -> int:
        return n * n

    handle = app.start_worker(queues={"default": 2}, **FAST)
    try:
        assert handle.running
        jobs = [square.defer(n=n) for n in range(10)]
        results = [wait_job(app, j.id, "succeeded").result for j in jobs]
        assert results == [n * n for n in range(10)]
    finally:
        handle.stop()
    assert not handle.running


def test_a_worker_that_cannot_start_says_why(tmp_path):
    app = errand.App(str(tmp_path / "w.db"))
    with pytest.raises(ValueError, match="no queue to claim from"):
        app.start_worker()

    @app.task
    def f() -> None: ...

    with pytest.raises(ValueError, match="concurrency of `default` must be a positive integer"):
        app.start_worker(queues={"default": 0})


def test_a_sync_handler_holding_the_gil_does_not_cost_any_job_its_lease(url):
    # A pure-Python busy loop holds the GIL (alone) for three leases while other jobs start and
    # finish; the pool's heartbeats and lease watchdog never wait on the GIL, so every job
    # keeps its lease: one attempt each, run once, no lease lost.
    app = errand.App(url)
    runs: list = []

    @app.task(max_attempts=1)
    def spin(ctx: errand.JobContext, seconds: float) -> int:
        runs.append(("spin", ctx.id, ctx.attempt))
        # A switch interval longer than the loop: no other thread gets the GIL meanwhile.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60)
        try:
            end, n = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                n += 1
        finally:
            sys.setswitchinterval(interval)
        return n

    @app.task(max_attempts=1)
    async def quick(ctx: errand.JobContext, i: int) -> int:
        runs.append(("quick", ctx.id, ctx.attempt))
        await asyncio.sleep(0.2)
        return i

    spinning = spin.defer(seconds=3.0)
    others = [quick.defer(i=i) for i in range(5)]
    with app.start_worker(poll_interval="20ms", lease="1s", queues={"default": 4}):
        done = [wait_job(app, j.id, "succeeded", "failed", timeout=30) for j in [spinning, *others]]
    assert [d.status for d in done] == ["succeeded"] * 6, done
    assert all(d.attempt == 1 for d in done), done
    assert sorted(r[1] for r in runs) == sorted(d.id for d in done), "each job ran once"
    for d in done:
        events = [e.kind for e in app.client.job_with_events(d.id).events]
        assert not any("lease" in k for k in events), (d.id, events)


async def test_many_jobs_reach_python_in_batches_and_leave_nothing_behind(url, monkeypatch):
    """Jobs reach the loop through the engine's mailbox, several per wake-up; each job's
    handler object is let go once its outcome is in (it and the engine's outcome slot refer
    to each other, a cycle Python's garbage collector cannot see through the native object)."""
    import gc

    from errand._worker import _Dispatcher, _Run

    wakes = []
    wake = _Dispatcher.wake
    monkeypatch.setattr(_Dispatcher, "wake", lambda self: (wakes.append(1), wake(self))[1])
    app = errand.App(url)

    @app.task
    async def quick(n: int) -> int:
        return n

    @app.task
    def quick_sync(n: int) -> int:
        return n

    jobs = quick.defer_many({"n": n} for n in range(300))
    jobs += quick_sync.defer_many({"n": n} for n in range(100))
    async with app.worker(queues={"default": 16}, **FAST):
        for j in jobs:
            done = await await_job(app, j.id, "succeeded", "failed")
            assert done.result == done.args["n"], done
    assert 0 < len(wakes) < len(jobs), f"{len(wakes)} wake-ups for {len(jobs)} jobs"
    gc.collect()
    left = sum(isinstance(o, _Run) for o in gc.get_objects())
    assert left == 0, f"{left} handler objects of 400 jobs are still alive after the worker stopped"


def test_a_job_cancelled_before_the_loop_took_it_never_starts(url):
    """While the event loop is blocked, a claimed job waits in the engine's mailbox; cancelled
    there, it is taken back and recorded without Python, and its handler never runs."""
    app = errand.App(url)
    ran: list = []
    blocking = threading.Event()
    release = threading.Event()

    @app.task
    async def block_the_loop() -> None:
        blocking.set()
        release.wait(30)  # a blocking call in an async handler: the loop stands still

    @app.task
    def victim() -> None:
        ran.append(1)

    with app.start_worker(queues={"default": 4}, **SHORT_LEASE):
        # Deferred once the worker has started: a job claimed at start-up can block the loop
        # before the loop tells the starting thread that the worker runs.
        blocker = block_the_loop.defer()
        assert blocking.wait(20)
        job = victim.defer()
        wait_job(app, job.id, "running")
        app.client.cancel(job.id)
        try:
            done = wait_job(app, job.id, "cancelled", "succeeded", "failed", timeout=15)
        finally:
            release.set()
        assert done.status == "cancelled", done
        wait_job(app, blocker.id, "succeeded")
    assert ran == []
