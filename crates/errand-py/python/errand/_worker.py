"""Workers: the engine's pool (claims, leases, heartbeats, fencing, retries, rescue, drain)
running Python handlers. For each job the engine calls the dispatcher here, which starts the
handler (a coroutine on the app's event loop, a plain function on a thread pool) and gives
its outcome to the engine's ``Done``; when the engine asks the job to stop, it calls
``cancel(reason)`` on the started handler.

Three ways to run one: ``async with app.worker(...)`` beside an asyncio app, ``app.start_worker()``
on a thread of its own for sync apps, ``app.run_worker()`` / ``python -m errand worker`` in the
foreground until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional

from . import _native
from ._context import JobContext
from ._durations import to_ms
from ._errors import Permanent, RetryAfter

__all__ = ["AsyncWorker", "ThreadWorker", "run_until_signal"]

#: A queue's concurrency when none is given.
DEFAULT_CONCURRENCY = 10


def _describe(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


def _fail(done: Any, e: BaseException) -> None:
    if isinstance(e, Permanent):
        done.permanent(_describe(e))
    elif isinstance(e, RetryAfter):
        done.retry_after(_describe(e), e.seconds)
    else:
        done.error(_describe(e))


def _succeed(done: Any, kind: str, result: Any) -> None:
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        done.error(f"the return value of {kind} is not JSON ({type(result).__name__}): {e}")
        return
    done.ok(text)


class _Run:
    """One job's handler call, and its way to be told to stop."""

    def __init__(self, task: Any, ctx: JobContext, args: Dict[str, Any], done: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.task = task
        self.ctx = ctx
        self.args = args
        self.done = done
        self.loop = loop
        self.atask: Optional[asyncio.Task] = None

    def _call(self) -> Any:
        if self.task.pass_context:
            return self.task.fn(self.ctx, **self.args)
        return self.task.fn(**self.args)

    # async handlers, on the app's loop

    def start_async(self) -> None:
        self.atask = self.loop.create_task(self._run_async())
        if self.ctx.cancelled:
            self.atask.cancel()

    async def _run_async(self) -> None:
        try:
            result = await self._call()
        except asyncio.CancelledError:
            self.done.error(f"stopped: {self.ctx.stop_reason or 'cancelled'}")
        except BaseException as e:  # noqa: BLE001 - every failure is the job's outcome
            _fail(self.done, e)
        else:
            _succeed(self.done, self.task.name, result)

    def _cancel_task(self) -> None:
        if self.atask is not None:
            self.atask.cancel()

    # sync handlers, on the worker's thread pool

    def run_sync(self) -> None:
        try:
            result = self._call()
        except BaseException as e:  # noqa: BLE001
            _fail(self.done, e)
        else:
            _succeed(self.done, self.task.name, result)

    # called by the engine (any thread)

    def cancel(self, reason: str) -> None:
        self.ctx._stop(reason)
        if self.task.is_async and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._cancel_task)


class _Dispatcher:
    """Starts the engine's jobs. The engine posts them to a mailbox (``bind`` gives it) and
    calls ``wake`` (on one of its threads, with the GIL) when the first one arrives; the loop
    then takes every job waiting in one call (``_drain``), so the GIL changes hands once per
    batch of jobs rather than once per job."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
        self.app = app
        self.loop = loop
        self.pool = pool
        self.mailbox: Any = None

    def bind(self, mailbox: Any) -> None:
        self.mailbox = mailbox

    def wake(self) -> None:
        # Raises if the loop is closed: the engine then fails the waiting jobs.
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        for facts, args, done, progress in self.mailbox.take():
            try:
                run = self._start(facts, args, done, progress)
                reason = done.attach(run)
                if reason is not None:
                    run.cancel(reason)
            except Exception as e:  # noqa: BLE001 - the job fails, its neighbours still start
                done.error(f"the Python dispatcher failed: {_describe(e)}")

    def _start(self, facts: str, args: str, done: Any, progress: Any) -> _Run:
        info = json.loads(facts)
        task = self.app.tasks.get(info["kind"])
        if task is None:  # the engine registers only the app's tasks; kept for clarity
            done.permanent(f"no Python handler for {info['kind']}")
            raise LookupError(info["kind"])
        ctx = JobContext(info, self.loop, progress)
        run = _Run(task, ctx, json.loads(args), done, self.loop)
        if task.is_async:
            run.start_async()
        else:
            self.pool.submit(run.run_sync)
        return run


async def _callback_future(start: Any) -> Any:
    """Calls ``start(callback)`` and waits for ``callback(error, value)`` from any thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(error: Optional[BaseException], value: Any) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(value)

    def callback(error: Optional[BaseException], value: Any) -> None:
        try:
            loop.call_soon_threadsafe(settle, error, value)
        except RuntimeError:
            pass

    start(callback)
    return await future


class AsyncWorker:
    """``async with app.worker(queues={"email": 4, "default": 10}):`` — a worker on the
    running event loop. Async handlers run on the loop, sync ones on a thread pool. On exit
    it stops claiming and lets running jobs finish (within ``shutdown_grace``).

    ``queues`` maps a queue to how many of its jobs run at once in this worker; by default
    every queue of the app's tasks, with ``concurrency`` (10) each. Limits across every
    worker process are the queue's (``app.queue(name, global_concurrency=...,
    key_concurrency=...)``), which the worker writes at its start. Settings: ``lease``,
    ``poll_interval``, ``shutdown_grace``, ``cancel_grace`` (durations), ``scheduler`` (fire
    the app's periodic tasks here; default True), ``threads`` (the sync handlers' pool;
    default the total concurrency).
    """

    def __init__(
        self,
        app: Any,
        queues: Optional[Dict[str, int]] = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease: Any = None,
        poll_interval: Any = None,
        shutdown_grace: Any = None,
        cancel_grace: Any = None,
        scheduler: bool = True,
        threads: Optional[int] = None,
    ) -> None:
        self.app = app
        if queues is None:
            queues = {t.queue: concurrency for t in app.tasks.values()}
        if not queues:
            raise ValueError("no queue to claim from: declare a task or pass queues={...}")
        self.queues = dict(queues)
        workers: Dict[str, int] = {}
        for key, value in (
            ("lease", lease),
            ("poll_interval", poll_interval),
            ("shutdown_grace", shutdown_grace),
            ("cancel_grace", cancel_grace),
        ):
            if value is not None:
                workers[f"{key}_ms"] = to_ms(key, value)
        self.config = {
            "queues": self.queues,
            "workers": workers,
            "scheduler": scheduler,
        }
        self.threads = threads or max(1, sum(self.queues.values()))
        self._native: Any = None
        self._pool: Optional[ThreadPoolExecutor] = None

    async def start(self) -> "AsyncWorker":
        loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="errand-job")
        client = self.app._native_client()
        config = dict(self.config)
        config["tasks"] = {k: t.settings for k, t in self.app.tasks.items()}
        config["schedules"] = self.app.schedules
        config["queue_limits"] = dict(self.app.queue_limits)
        dispatcher = _Dispatcher(self.app, loop, self._pool)
        text = json.dumps(config)
        try:
            self._native = await _callback_future(
                lambda cb: _native.Worker.start(client, text, dispatcher, cb)
            )
        except BaseException:
            self._pool.shutdown(wait=False)
            raise
        return self

    async def stop(self) -> None:
        """Stops claiming, waits for running jobs (within the shutdown grace), then stops the
        scheduler and maintenance."""
        if self._native is not None:
            native, self._native = self._native, None
            await _callback_future(native.stop)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def __aenter__(self) -> "AsyncWorker":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


class ThreadWorker:
    """A worker on a thread of its own, with its own event loop (for sync apps):
    ``handle = app.start_worker(...)``, later ``handle.stop()``. Also a context manager."""

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._started = threading.Event()
        self._error: Optional[BaseException] = None

    @classmethod
    def start(cls, app: Any, queues: Optional[Dict[str, int]] = None, **settings: Any) -> "ThreadWorker":
        h = cls()
        worker = AsyncWorker(app, queues, **settings)

        async def main() -> None:
            h._loop = asyncio.get_running_loop()
            h._stop = asyncio.Event()
            try:
                await worker.start()
            except BaseException as e:  # noqa: BLE001 - handed to the starting thread
                h._error = e
                h._started.set()
                return
            h._started.set()
            try:
                await h._stop.wait()
            finally:
                await worker.stop()

        h._thread = threading.Thread(target=asyncio.run, args=(main(),), name="errand-worker", daemon=True)
        h._thread.start()
        h._started.wait()
        if h._error is not None:
            h._thread.join()
            raise h._error
        return h

    def stop(self, timeout: Optional[float] = None) -> None:
        """Drains the worker and waits for its thread (at most ``timeout`` seconds)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "ThreadWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_until_signal(app: Any, queues: Optional[Dict[str, int]] = None, **settings: Any) -> None:
    """Runs a worker in the foreground: SIGTERM or SIGINT stops claiming and drains; a second
    signal exits at once (running jobs are rescued after their lease)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(name: str) -> None:
            if stop.is_set():
                print(f"errand: second {name}: exiting now; running jobs are rescued after "
                      "their lease", file=sys.stderr, flush=True)
                os._exit(1)
            print(f"errand: {name}: no new jobs are claimed; running jobs may finish",
                  file=sys.stderr, flush=True)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        async with AsyncWorker(app, queues, **settings) as w:
            listed = ", ".join(f"{q}({n})" for q, n in sorted(w.queues.items()))
            print(f"errand worker ready: {app.backend}, queues {listed}, tasks "
                  f"{', '.join(sorted(app.tasks))}", file=sys.stderr, flush=True)
            await stop.wait()
        print("errand worker stopped", file=sys.stderr, flush=True)

    asyncio.run(main())
