"""The client's operations (read jobs, queues and schedules; cancel, retry, pause, resume,
set queue limits, trigger), each one call into the engine that returns a typed view. ``App.client`` has them
blocking (the GIL released while the engine works), ``App.aio`` as coroutines."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence

from ._views import (
    Job,
    JobDetail,
    JobPage,
    Queue,
    Schedule,
    ScheduleDetail,
    Triggered,
    build,
)

__all__ = ["Operations"]


class Operations:
    """The operator's calls. Every method returns its result, or with ``asynchronous=True``
    (``app.aio``) a coroutine of it."""

    def __init__(self, client: Callable[[], Any], asynchronous: bool) -> None:
        self._client = client
        self._async = asynchronous

    def _call(self, op: str, payload: Dict[str, Any], convert: Callable[[Any], Any]) -> Any:
        text = json.dumps(payload)
        if not self._async:
            return convert(json.loads(self._client().call(op, text)))

        async def run() -> Any:
            from ._app import _await_native

            return convert(json.loads(await _await_native(self._client(), op, text)))

        return run()

    def job(self, id: int) -> Optional[Job]:
        """One job, or None."""
        return self._call("job", {"id": id}, lambda v: None if v is None else build(Job, v))

    def job_with_events(self, id: int) -> JobDetail:
        """One job with its events; ``NotFoundError`` if it does not exist."""
        return self._call("job_with_events", {"id": id}, lambda v: build(JobDetail, v))

    def list(
        self,
        *,
        state: Optional[str] = None,
        queue: Optional[str] = None,
        kind: Optional[str] = None,
        reference: Optional[Sequence[Any]] = None,
        before_id: Optional[int] = None,
        limit: int = 50,
    ) -> JobPage:
        """A page of jobs, newest first. ``state`` is a status (``queued``, ``running``,
        ``succeeded``, ``failed``, ``cancelled``) or a derived state (``scheduled``,
        ``retrying``, ``stuck``)."""
        payload: Dict[str, Any] = {
            "state": state,
            "queue": queue,
            "kind": kind,
            "before_id": before_id,
            "limit": limit,
        }
        if reference is not None:
            payload["reference_type"] = str(reference[0])
            payload["reference_id"] = str(reference[1])
        return self._call("list", payload, lambda v: build(JobPage, v))

    def find_by_reference(self, type: str, id: Any) -> List[Job]:
        """Every job about one entity, newest first."""
        payload = {"reference_type": type, "reference_id": str(id)}
        return self._call("find_by_reference", payload, lambda v: [build(Job, j) for j in v])

    def stats(self) -> List[Queue]:
        """Every queue's counts and recent figures."""
        return self._call("stats", {}, lambda v: [build(Queue, q) for q in v])

    def cancel(self, *ids: int, reason: Optional[str] = None) -> List[Dict[str, Any]]:
        """Cancels jobs: queued ones at once, running ones through their worker (their
        handler's context fires). One ``{"outcome", "id", ...}`` per id."""
        return self._call("cancel", {"ids": list(ids), "reason": reason}, lambda v: v)

    def retry(self, *ids: int) -> List[Dict[str, Any]]:
        """Puts failed or cancelled jobs back in their queue with a fresh attempt budget."""
        return self._call("retry", {"ids": list(ids)}, lambda v: v)

    def pause_queue(self, name: str) -> None:
        return self._call("pause_queue", {"name": name}, lambda v: None)

    def resume_queue(self, name: str) -> None:
        return self._call("resume_queue", {"name": name}, lambda v: None)

    def set_queue_limits(
        self,
        name: str,
        *,
        global_concurrency: Optional[int] = None,
        key_concurrency: Optional[int] = None,
        rate_limit: Optional[str] = None,
    ) -> None:
        """Sets a queue's flow-control limits across every worker process, replacing all
        three: at most ``global_concurrency`` of its jobs run at once, at most
        ``key_concurrency`` per ``concurrency_key`` for keyed jobs with no limit of their own,
        at most ``rate_limit`` starts in any window (``"100/1m"``); None lifts a limit. A bad
        value is an ``InvalidError`` naming it, and nothing is written. Running workers claim
        under the new limits at once; a worker of an app that declares the queue
        (``app.queue``) writes the app's limits again when it starts."""
        payload = {
            "name": name,
            "global_concurrency": global_concurrency,
            "key_concurrency": key_concurrency,
            "rate_limit": rate_limit,
        }
        return self._call("set_queue_limits", payload, lambda v: None)

    def schedules(self) -> List[Schedule]:
        return self._call("schedules", {}, lambda v: [build(Schedule, s) for s in v])

    def schedule(self, name: str) -> ScheduleDetail:
        return self._call("schedule", {"name": name}, lambda v: build(ScheduleDetail, v))

    def pause_schedule(self, name: str) -> Schedule:
        return self._call("schedule_pause", {"name": name}, lambda v: build(Schedule, v))

    def resume_schedule(self, name: str) -> Schedule:
        return self._call("schedule_resume", {"name": name}, lambda v: build(Schedule, v))

    def trigger_schedule(self, name: str, force: bool = False) -> Triggered:
        """Enqueues the schedule's job now (unless its overlap policy says not to while the
        previous run is live; ``force`` overrides)."""
        payload = {"name": name, "force": force}
        return self._call("schedule_trigger", payload, lambda v: build(Triggered, v))
