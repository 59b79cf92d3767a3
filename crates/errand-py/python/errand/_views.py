"""Typed views of Errand's resources: dataclasses with the field names of the one JSON view
of each resource that ``errand --json`` and the HTTP API print (``errand::views``). The
engine serialises the view; this module only gives it Python types (timestamps become aware
``datetime`` objects). A field the JSON lacks (a view from an older engine) is None; a field
the class lacks (a newer engine's) is ignored."""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any, Dict, List, Optional, Type, TypeVar

__all__ = [
    "Enqueued",
    "Event",
    "Job",
    "JobDetail",
    "JobPage",
    "LastRun",
    "Queue",
    "QueueCounts",
    "QueueRecent",
    "Reference",
    "Schedule",
    "ScheduleDetail",
    "Triggered",
]

T = TypeVar("T")

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(text: Optional[str]) -> Optional[datetime.datetime]:
    """An RFC 3339 timestamp as the engine writes it (``...T12:00:00.123456789Z``)."""
    if text is None:
        return None
    text = text.replace("Z", "+00:00")
    # fromisoformat before 3.11 takes 3 or 6 fractional digits only.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    return datetime.datetime.fromisoformat(text)


def build(cls: Type[T], data: Any) -> T:
    """``cls`` from the view's JSON object: nested views by the class's ``_nested``, every
    field named ``*_at`` or ``at`` as a datetime."""
    nested: Dict[str, Any] = getattr(cls, "_nested", {})
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        v = data.get(f.name)
        kind = nested.get(f.name)
        if v is not None and kind is not None:
            v = [build(kind[0], x) for x in v] if isinstance(kind, list) else build(kind, v)
        elif f.name == "at" or f.name.endswith("_at"):
            v = parse_time(v)
        values[f.name] = v
    return cls(**values)  # type: ignore[call-arg]


@dataclasses.dataclass(frozen=True)
class Enqueued:
    """What ``defer`` did: the job's id, and whether it was inserted (False: a job with the
    same unique key was already queued or running, and ``id`` is that job's)."""

    id: int
    inserted: bool


@dataclasses.dataclass(frozen=True)
class Reference:
    """The entity a job is about."""

    type: str
    id: str


@dataclasses.dataclass(frozen=True)
class Job:
    """A job, every field (the ``Job`` view): its stored ``status`` and the ``derived`` state
    it is in now (``scheduled``, ``retrying``, ``stuck``), if any."""

    id: int
    queue: str
    kind: str
    status: str
    derived: Optional[str]
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime.datetime
    created_at: datetime.datetime
    started_at: Optional[datetime.datetime]
    finished_at: Optional[datetime.datetime]
    updated_at: datetime.datetime
    unique_key: Optional[str]
    reference: Optional[Reference]
    args: Dict[str, Any]
    result: Any
    #: What the handler last reported (``ctx.progress``), or None; kept after the job ends.
    progress: Any
    progress_at: Optional[datetime.datetime]
    last_error: Optional[str]
    timeout_ms: Optional[int]
    worker_id: Optional[str]
    lease_expires_at: Optional[datetime.datetime]
    cancel_requested_at: Optional[datetime.datetime]
    #: Jobs sharing this key (within the queue) run at most ``key_concurrency`` at a time
    #: across every worker; None when the job has none. Redacted when it is the value of a
    #: secret-looking argument.
    concurrency_key: Optional[str] = None
    #: The job's own limit for its key; None takes the queue's ``key_concurrency``, else 1.
    key_concurrency: Optional[int] = None

    _nested = {"reference": Reference}


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a job's history."""

    id: int
    job_id: int
    at: datetime.datetime
    kind: str
    attempt: int
    worker_id: Optional[str]
    message: Optional[str]
    data: Any


@dataclasses.dataclass(frozen=True)
class JobDetail:
    """A job with its events, oldest first."""

    job: Job
    events: List[Event]

    _nested = {"job": Job, "events": [Event]}


@dataclasses.dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first; ``next_cursor`` is ``before_id`` of the next page."""

    jobs: List[Job]
    next_cursor: Optional[int]

    _nested = {"jobs": [Job]}


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    queued: int
    scheduled: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


@dataclasses.dataclass(frozen=True)
class QueueRecent:
    window_ms: int
    succeeded: int
    failed: int
    cancelled: int
    throughput_per_min: float
    duration_avg_ms: Optional[float]
    duration_p95_ms: Optional[float]
    duration_max_ms: Optional[float]


@dataclasses.dataclass(frozen=True)
class Queue:
    """A queue's statistics (the ``Queue`` view): counts by state, the oldest ready job,
    what finished in the last hour, and its flow-control limits."""

    name: str
    paused: bool
    paused_at: Optional[datetime.datetime]
    counts: QueueCounts
    oldest_ready_run_at: Optional[datetime.datetime]
    oldest_ready_age_ms: Optional[int]
    recent: QueueRecent
    #: At most this many of its jobs run at once across every worker process (None: no limit).
    global_concurrency: Optional[int] = None
    #: At most this many running jobs per ``concurrency_key``, for keyed jobs with no limit of
    #: their own (None: 1).
    key_concurrency: Optional[int] = None
    #: At most this many starts in any window of the duration, ``"100/1m"`` (None: no limit).
    rate_limit: Optional[str] = None

    _nested = {"counts": QueueCounts, "recent": QueueRecent}


@dataclasses.dataclass(frozen=True)
class LastRun:
    job_id: int
    status: Optional[str]
    created_at: Optional[datetime.datetime]
    started_at: Optional[datetime.datetime]
    finished_at: Optional[datetime.datetime]
    duration_ms: Optional[int]
    result: Any
    last_error: Optional[str]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A schedule (the ``Schedule`` view)."""

    name: str
    cron: Optional[str]
    every: Optional[str]
    timezone: Optional[str]
    kind: str
    queue: str
    args: Any
    priority: Optional[int]
    max_attempts: Optional[int]
    overlap: Optional[str]
    misfire_grace_ms: Optional[int]
    coalesce: Optional[bool]
    paused: bool
    problem: Optional[str]
    source: str
    next_fire_at: Optional[datetime.datetime]
    last_fire_at: datetime.datetime
    last_run: Optional[LastRun]
    created_at: datetime.datetime
    updated_at: datetime.datetime

    _nested = {"last_run": LastRun}


@dataclasses.dataclass(frozen=True)
class ScheduleDetail:
    """A schedule in full: its next fires, run statistics, recent runs and skipped fires
    (the last four as the view's JSON objects)."""

    schedule: Schedule
    next_fires: List[Dict[str, Any]]
    stats: Dict[str, Any]
    runs: List[Dict[str, Any]]
    skipped: List[Dict[str, Any]]

    _nested = {"schedule": Schedule}


@dataclasses.dataclass(frozen=True)
class Triggered:
    """What a manual trigger did: the job enqueued, or why nothing was (``skipped``)."""

    job_id: Optional[int]
    skipped: Optional[str]
