"""Errand for Python: durable background jobs on Errand's engine (SQLite or PostgreSQL).

    import errand

    app = errand.App("errand.db")

    @app.task(queue="email", max_attempts=5, timeout="10m")
    async def send_email(to: str, subject: str) -> dict:
        ...

    send_email.defer(to="ada@example.com", subject="hi")

    async with app.worker(queues={"email": 4}):
        ...

The engine (claims, leases, heartbeats, fencing, retries, rescue, schedules) is the Rust
library the ``errand`` binary runs; this package gives it a Python API. See docs/python.md.
"""

import atexit as _atexit

from . import _native
from ._app import App, Backoff, Configured, Task
from ._context import JobContext
from ._errors import (
    ErrandError,
    InvalidError,
    NotFoundError,
    NotSerializable,
    Permanent,
    RetryAfter,
)
from ._views import (
    Enqueued,
    Event,
    Job,
    JobDetail,
    JobPage,
    LastRun,
    Queue,
    QueueCounts,
    QueueRecent,
    Reference,
    Schedule,
    ScheduleDetail,
    Triggered,
)

__all__ = [
    "App",
    "Backoff",
    "Configured",
    "Enqueued",
    "ErrandError",
    "Event",
    "InvalidError",
    "Job",
    "JobContext",
    "JobDetail",
    "JobPage",
    "LastRun",
    "NotFoundError",
    "NotSerializable",
    "Permanent",
    "Queue",
    "QueueCounts",
    "QueueRecent",
    "Reference",
    "RetryAfter",
    "Schedule",
    "ScheduleDetail",
    "Task",
    "Triggered",
]

# The engine's threads stop before the interpreter is torn down (none may be inside Python
# then).
_atexit.register(_native.shutdown)
