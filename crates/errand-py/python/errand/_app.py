"""``App`` and ``Task``: tasks declared with a decorator, deferred with JSON arguments.

A task's settings (queue, attempts, timeout, backoff, concurrency key) are handed to the
engine as the same task definitions ``[tasks.KIND]`` tables become, so the engine's task
catalog applies them to every job of the kind, whoever enqueues it (this package, ``errand
enqueue``, the HTTP API, a schedule). Nothing here decides anything about a job: validation,
defaults, unique keys and concurrency keys are the engine's. A queue's limits
(``App.queue``) are the ``[queues.NAME]`` limits, written by each worker at its start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _native
from ._durations import Duration, to_ms
from ._errors import NotSerializable
from ._ops import Operations
from ._views import Enqueued

__all__ = ["App", "Backoff", "Configured", "Task"]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """The wait before a failed job's next attempt: ``base`` doubling per attempt up to
    ``cap``, spread by ``jitter`` (0.1 is ±10 %)."""

    base: Duration = "5s"
    cap: Duration = "1h"
    jitter: float = 0.1

    def _json(self, field: str) -> Dict[str, Any]:
        if not 0.0 <= float(self.jitter) <= 1.0:
            raise ValueError(f"{field}.jitter: expected a fraction from 0 to 1, got {self.jitter!r}")
        return {
            "base_ms": to_ms(f"{field}.base", self.base),
            "cap_ms": to_ms(f"{field}.cap", self.cap),
            "jitter": float(self.jitter),
        }


def _wants_context(fn: Callable[..., Any]) -> bool:
    """Whether ``fn``'s first parameter is the job context (named ``ctx``/``context`` or
    annotated ``JobContext``)."""
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return False
    first = params[0]
    ann = first.annotation
    ann_name = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
    return first.name in ("ctx", "context") or str(ann_name).endswith("JobContext")


def _check_key_argument(kind: str, fn: Callable[..., Any], ctx: bool, arg: Any) -> None:
    """``concurrency_key`` of a task names one of its function's arguments."""
    if not isinstance(arg, str) or not arg:
        raise ValueError(
            f"task {kind}: concurrency_key must name an argument (e.g. \"program_id\"), got "
            f"{arg!r}"
        )
    params = list(inspect.signature(fn).parameters.values())[1 if ctx else 0:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    if arg not in names:
        raise ValueError(
            f"task {kind}: concurrency_key {arg!r} is not an argument of the task "
            f"(its arguments: {', '.join(names) or 'none'})"
        )


def _json_value(task: str, name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise NotSerializable(
            f"{task}: argument `{name}` is not JSON-serialisable ({type(value).__name__}: {e}); "
            "pass JSON values (str, int, float, bool, None, list, dict) and load objects in "
            "the handler by id"
        ) from None


class Task:
    """A function declared with ``@app.task``. Calling it runs the function here; ``defer``
    enqueues a job of its kind."""

    def __init__(
        self,
        app: "App",
        fn: Callable[..., Any],
        name: str,
        settings: Dict[str, Any],
        pass_context: bool,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.settings = settings
        self.pass_context = pass_context
        self.is_async = inspect.iscoroutinefunction(fn)
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        self._signature = sig.replace(parameters=params[1:] if pass_context else params)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    @property
    def queue(self) -> str:
        return self.settings.get("queue", "default")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<errand.Task {self.name} queue={self.queue!r}>"

    def check_args(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The job's args: ``kwargs`` if the function takes them and each is JSON."""
        params = self._signature.parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                raise TypeError(
                    f"{self.name}: got an unexpected keyword argument {unknown[0]!r} "
                    f"(signature: {self.name}{self._signature})"
                )
        try:
            self._signature.bind(**kwargs)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e} (signature: {self.name}{self._signature})") from None
        for k, v in kwargs.items():
            _json_value(self.name, k, v)
        return dict(kwargs)

    def configure(
        self,
        *,
        delay: Optional[Duration] = None,
        unique_key: Optional[str] = None,
        reference: Optional[Tuple[str, Union[str, int]]] = None,
        priority: Optional[int] = None,
        queue: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Optional[Duration] = None,
        concurrency_key: Optional[str] = None,
        key_concurrency: Optional[int] = None,
    ) -> "Configured":
        """This task with settings for the next job(s): ``.configure(...).defer(...)``.

        ``concurrency_key``: jobs sharing the key (within their queue) run at most
        ``key_concurrency`` at a time across every worker process (default: the task's
        ``key_concurrency``, else the queue's, else 1); given here it replaces the key the
        task derives from an argument."""
        opts: Dict[str, Any] = {}
        if delay is not None:
            opts["delay_ms"] = to_ms("delay", delay)
        if timeout is not None:
            opts["timeout_ms"] = to_ms("timeout", timeout)
        if unique_key is not None:
            opts["unique_key"] = unique_key
        if reference is not None:
            if not (isinstance(reference, tuple) and len(reference) == 2):
                raise TypeError("reference: expected a (type, id) tuple, e.g. (\"user\", 42)")
            opts["reference_type"] = str(reference[0])
            opts["reference_id"] = str(reference[1])
        if priority is not None:
            opts["priority"] = priority
        if queue is not None:
            opts["queue"] = queue
        if max_attempts is not None:
            opts["max_attempts"] = max_attempts
        if concurrency_key is not None:
            if not isinstance(concurrency_key, str):
                raise TypeError(
                    f"concurrency_key: expected a string, got {type(concurrency_key).__name__} "
                    f"(e.g. concurrency_key=f\"program:{{program_id}}\")"
                )
            opts["concurrency_key"] = concurrency_key
        if key_concurrency is not None:
            opts["key_concurrency"] = key_concurrency
        return Configured(self, opts)

    def defer(self, **kwargs: Any) -> Enqueued:
        """Enqueues a job with these arguments (blocking; see ``defer_async``)."""
        return Configured(self, {}).defer(**kwargs)

    async def defer_async(self, **kwargs: Any) -> Enqueued:
        """Enqueues a job without blocking the event loop."""
        return await Configured(self, {}).defer_async(**kwargs)

    def defer_many(self, batch: Iterable[Dict[str, Any]]) -> List[Enqueued]:
        """Enqueues one job per dict of arguments, all in one write: every job or none (a
        refused one names its index)."""
        return Configured(self, {}).defer_many(batch)

    def defer_in(self, connection: Any, **kwargs: Any) -> Enqueued:
        """Enqueues a job through the application's own ``connection`` (psycopg 3, SQLAlchemy
        ``Session``/``Connection``, ``sqlite3``, Django), inside its current transaction: the
        job exists when that transaction commits, and never if it rolls back. The job is the
        one ``defer`` would write (the task's settings, the same checks). A job with a
        ``concurrency_key`` is refused (``InvalidError``): the SQL enqueue cannot write one;
        defer it with ``defer``."""
        return Configured(self, {}).defer_in(connection, **kwargs)

    async def defer_in_async(self, connection: Any, **kwargs: Any) -> Enqueued:
        """As ``defer_in``, for async connections and sessions."""
        return await Configured(self, {}).defer_in_async(connection, **kwargs)


class Configured:
    """A task with settings for its next jobs (from ``Task.configure``)."""

    def __init__(self, task: Task, options: Dict[str, Any]) -> None:
        self.task = task
        self.options = options

    def _payload(self, kwargs: Dict[str, Any]) -> str:
        args = self.task.check_args(kwargs)
        return json.dumps({"kind": self.task.name, "args": args, **self.options})

    def defer(self, **kwargs: Any) -> Enqueued:
        answer = self.task.app._native_client().call("enqueue", self._payload(kwargs))
        return Enqueued(**json.loads(answer))

    def defer_many(self, batch: Iterable[Dict[str, Any]]) -> List[Enqueued]:
        """Enqueues one job per dict of arguments, all in one write (all or none)."""
        jobs = [json.loads(self._payload(kwargs)) for kwargs in batch]
        answer = self.task.app._native_client().call("enqueue_many", json.dumps({"jobs": jobs}))
        return [Enqueued(**e) for e in json.loads(answer)]

    def _prepared(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The job as the engine prepares it, for ``defer_in``; refused if it has a
        ``concurrency_key``, which the SQL enqueue does not take (see ``_in_transaction``)."""
        from ._in_transaction import refuse_keyed

        job = json.loads(self.task.app._native_client().call("prepare", self._payload(kwargs)))
        if "concurrency_key" in self.options:
            source = "given with configure(concurrency_key=...)"
        else:
            arg = self.task.settings.get("concurrency_key")
            source = f"derived by task {self.task.name} from its argument `{arg}`"
        refuse_keyed(job, source)
        return job

    def defer_in(self, connection: Any, **kwargs: Any) -> Enqueued:
        """Enqueues through ``connection``, in its current transaction (see ``Task.defer_in``)."""
        from ._in_transaction import call_for, is_async_target

        if is_async_target(connection):
            raise TypeError("an async connection or session: use `await ....defer_in_async(...)`")
        return call_for(connection, self._prepared(kwargs))

    async def defer_in_async(self, connection: Any, **kwargs: Any) -> Enqueued:
        """As ``defer_in``, for psycopg's and SQLAlchemy's async connections and sessions."""
        from ._in_transaction import call_for, is_async_target

        out = call_for(connection, self._prepared(kwargs))
        return await out if is_async_target(connection) else out

    async def defer_async(self, **kwargs: Any) -> Enqueued:
        payload = self._payload(kwargs)
        answer = await _await_native(self.task.app._native_client(), "enqueue", payload)
        return Enqueued(**json.loads(answer))


async def _await_native(client: Any, op: str, payload: str) -> str:
    """Runs ``op`` on the engine's threads; the event loop waits on a future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(error: Optional[BaseException], value: Any) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def callback(error: Optional[BaseException], value: Any) -> None:
        # On one of the engine's threads: hand over to the loop.
        try:
            loop.call_soon_threadsafe(settle, error, value)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    client.call_async(op, payload, callback)
    return await future


class App:
    """An Errand application: a database URL (``"errand.db"``, ``"sqlite:jobs.db"``,
    ``"postgresql://..."``, as the ``errand`` binary takes), its tasks and its schedules.

    The database is opened (and migrated) on first use.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.tasks: Dict[str, Task] = {}
        self.schedules: Dict[str, Dict[str, Any]] = {}
        #: Queues' limits across every worker process (``queue``), written by each worker at
        #: its start.
        self.queue_limits: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._native: Any = None
        self._bound: Any = None
        self._bound_version = -1
        self._version = 0
        #: Operations that block (with the GIL released): ``app.client.job(id)``...
        self.client = Operations(self._native_client, asynchronous=False)
        #: The same operations for asyncio: ``await app.aio.job(id)``...
        self.aio = Operations(self._native_client, asynchronous=True)

    def __repr__(self) -> str:
        return f"<errand.App {self.url!r} tasks={sorted(self.tasks)}>"

    # ---- declarations ------------------------------------------------------------------

    def task(
        self,
        fn: Optional[Callable[..., Any]] = None,
        *,
        name: Optional[str] = None,
        queue: str = "default",
        max_attempts: Optional[int] = None,
        timeout: Optional[Duration] = None,
        backoff: Optional[Backoff] = None,
        pass_context: Optional[bool] = None,
        concurrency_key: Optional[str] = None,
        key_concurrency: Optional[int] = None,
    ) -> Any:
        """Declares a task: ``@app.task`` or ``@app.task(queue=..., max_attempts=...,
        timeout="10m", backoff=errand.Backoff(base="5s", cap="1h"))``. The job kind is
        ``name``, or the function's ``__name__``.

        ``concurrency_key="program_id"`` names the argument whose value is each job's
        concurrency key (a string as it is, a number or boolean as its JSON text; a job
        without the argument, or with ``None``, has no key) unless the job is given one with
        ``configure(concurrency_key=...)``; ``key_concurrency=N`` is how many jobs of one key
        run at once across every worker process (default: the queue's, else 1)."""

        def declare(f: Callable[..., Any]) -> Task:
            kind = name or f.__name__
            settings: Dict[str, Any] = {"queue": queue}
            if max_attempts is not None:
                if not isinstance(max_attempts, int) or max_attempts < 1:
                    raise ValueError(f"task {kind}: max_attempts must be a positive integer")
                settings["max_attempts"] = max_attempts
            if timeout is not None:
                settings["timeout_ms"] = to_ms(f"task {kind}: timeout", timeout)
            if backoff is not None:
                settings["backoff"] = backoff._json(f"task {kind}: backoff")
            ctx = _wants_context(f) if pass_context is None else pass_context
            if key_concurrency is not None:
                if isinstance(key_concurrency, bool) or not isinstance(key_concurrency, int) \
                        or key_concurrency < 1:
                    raise ValueError(
                        f"task {kind}: key_concurrency must be a positive integer, got "
                        f"{key_concurrency!r}"
                    )
                settings["key_concurrency"] = key_concurrency
            if concurrency_key is not None:
                _check_key_argument(kind, f, ctx, concurrency_key)
                settings["concurrency_key"] = concurrency_key
            if kind in self.tasks and self.tasks[kind].fn is not f:
                raise ValueError(f"task {kind} is declared twice")
            t = Task(self, f, kind, settings, ctx)
            with self._lock:
                self.tasks[kind] = t
                self._version += 1
            return t

        return declare(fn) if fn is not None else declare

    def queue(
        self,
        name: str,
        *,
        global_concurrency: Optional[int] = None,
        key_concurrency: Optional[int] = None,
        rate_limit: Optional[str] = None,
    ) -> None:
        """Declares a queue's flow-control limits across every worker process, as a
        ``[queues.NAME]`` table of ``errand.toml`` does: at most ``global_concurrency`` of its
        jobs run at once, at most ``key_concurrency`` per ``concurrency_key`` for keyed jobs
        that carry no limit of their own (default 1), at most ``rate_limit`` starts in any
        window (``"100/1m"``: N per duration, a sliding window). Checked when declared
        (``ValueError`` naming the field). Each worker writes them to the database when it
        starts, where they differ from the stored ones: the app owns the limits of the queues
        it declares (a limit not given is lifted). How many jobs one worker runs at once is
        still the worker's ``queues={...}``. To change limits while workers run, see
        ``app.client.set_queue_limits``."""
        spec = {
            "global_concurrency": global_concurrency,
            "key_concurrency": key_concurrency,
            "rate_limit": rate_limit,
        }
        _native.check_queue_limits(name, json.dumps(spec))
        with self._lock:
            self.queue_limits[name] = spec

    def periodic(
        self,
        *,
        cron: Optional[str] = None,
        every: Optional[Duration] = None,
        timezone: Optional[str] = None,
        overlap: str = "skip",
        name: Optional[str] = None,
        args: Optional[Dict[str, Any]] = None,
        misfire_grace: Optional[Duration] = None,
        coalesce: bool = True,
        priority: Optional[int] = None,
        paused: bool = False,
    ) -> Callable[[Any], Task]:
        """Declares a schedule firing a task (reconciled by the worker as a ``[schedules.NAME]``
        table is by ``errand serve``): put it above ``@app.task(...)``, or on a plain function
        (which becomes a task in the ``default`` queue). The schedule's name is ``name`` or
        the task's."""

        def declare(target: Any) -> Task:
            kind = target.name if isinstance(target, Task) else target.__name__
            task_queue = target.queue if isinstance(target, Task) else "default"
            sched_name = name or kind
            spec: Dict[str, Any] = {
                "kind": kind,
                "queue": task_queue,
                "overlap": overlap,
                "coalesce": coalesce,
            }
            if cron is not None:
                spec["cron"] = cron
            if every is not None:
                spec["every"] = f"{to_ms('every', every)}ms" if not isinstance(every, str) else every
            if timezone is not None:
                spec["timezone"] = timezone
            if args is not None:
                for k, v in args.items():
                    _json_value(sched_name, k, v)
                spec["args"] = dict(args)
            if misfire_grace is not None:
                spec["misfire_grace"] = (
                    misfire_grace if isinstance(misfire_grace, str)
                    else f"{to_ms('misfire_grace', misfire_grace)}ms"
                )
            if priority is not None:
                spec["priority"] = priority
            if paused:
                spec["paused"] = True
            _native.check_schedule(sched_name, json.dumps(spec))
            t = target if isinstance(target, Task) else self.task(target)
            if args is not None:
                t.check_args(args)
            with self._lock:
                self.schedules[sched_name] = spec
            return t

        return declare

    # ---- the engine --------------------------------------------------------------------

    def tasks_json(self) -> str:
        return json.dumps({k: t.settings for k, t in self.tasks.items()})

    def _native_client(self) -> Any:
        with self._lock:
            if self._native is None:
                self._native = _native.Client.connect(self.url)
            if self._bound_version != self._version:
                self._bound = self._native.with_tasks(self.tasks_json())
                self._bound_version = self._version
            return self._bound

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgres``."""
        return self._native_client().backend()

    # ---- workers (see errand._worker) --------------------------------------------------

    def worker(self, queues: Optional[Dict[str, int]] = None, **settings: Any) -> Any:
        """``async with app.worker(queues={"email": 4}):`` runs a worker beside the app on
        its event loop; on exit it stops claiming and lets running jobs finish."""
        from ._worker import AsyncWorker

        return AsyncWorker(self, queues, **settings)

    def start_worker(self, queues: Optional[Dict[str, int]] = None, **settings: Any) -> Any:
        """Starts a worker on a thread of its own (for sync apps); returns its handle, whose
        ``stop()`` drains it."""
        from ._worker import ThreadWorker

        return ThreadWorker.start(self, queues, **settings)

    def run_worker(self, queues: Optional[Dict[str, int]] = None, **settings: Any) -> None:
        """Runs a worker in this thread until SIGTERM or SIGINT (then drains), or until
        ``KeyboardInterrupt``."""
        from ._worker import run_until_signal

        run_until_signal(self, queues, **settings)
