"""What a handler may ask for besides its arguments: the job's facts, the signal that the
pool wants it to stop, and a way to report progress. The signal is the Rust pool's (cancel,
timeout, lost lease, end of the shutdown grace); this object only shows it to Python code.
Progress reports go to the Rust pool's writer, which never makes the handler wait."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Optional

from ._errors import NotSerializable

__all__ = ["JobContext"]


class JobContext:
    """The running job, as a handler sees it.

    ``cancelled`` becomes true, and ``wait_cancelled()`` / ``cancel_event`` fire, when the
    pool asks the job to stop; ``stop_reason`` is then ``"cancelled"`` (an operator cancelled
    it), ``"timeout"``, ``"lease_lost"`` (another worker holds it now) or ``"shutdown"`` (the
    worker's shutdown grace is over). An async handler is also cancelled (``CancelledError``
    at its next ``await``). The pool extends the job's lease while the handler runs: no
    heartbeat call is needed.

    ``progress(value)`` reports how far the job has come (shown on the job as ``progress``).
    """

    __slots__ = (
        "id",
        "kind",
        "queue",
        "attempt",
        "max_attempts",
        "worker_id",
        "timeout",
        "cancel_event",
        "_reason",
        "_loop",
        "_async_event",
        "_progress",
    )

    def __init__(
        self,
        facts: dict,
        loop: Optional[asyncio.AbstractEventLoop],
        progress: Any,
    ) -> None:
        self.id: int = facts["id"]
        self.kind: str = facts["kind"]
        self.queue: str = facts["queue"]
        self.attempt: int = facts["attempt"]
        self.max_attempts: int = facts["max_attempts"]
        self.worker_id: str = facts["worker_id"]
        ms = facts.get("timeout_ms")
        #: The attempt's execution limit in seconds, or None.
        self.timeout: Optional[float] = ms / 1000 if ms else None
        #: Set when the pool asks the job to stop (for sync handlers: ``wait(timeout)`` on it).
        self.cancel_event = threading.Event()
        self._reason: Optional[str] = None
        self._loop = loop
        self._async_event: Optional[asyncio.Event] = None
        self._progress = progress

    def progress(self, value: Any) -> None:
        """Reports how far the job has come: any JSON value, by convention
        ``{"done": 40, "total": 100, "message": "..."}``. Operators see the last report on the
        job (``progress``, ``progress_at``) until the next attempt starts, and after the job
        finishes; values under secret-looking keys are redacted for them as in a result.

        Never waits for the database, from an async or a sync handler: the report is handed
        to the engine, which writes at most one per job at a time (a newer report replaces
        one not yet written) and writes the last one before the job's outcome. Raises
        ``NotSerializable`` for a value that is not JSON and ``InvalidError`` for one over
        8 KiB as compact JSON. After the worker lost the job, reports are dropped.
        """
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise NotSerializable(
                f"`progress` is not JSON ({type(value).__name__}): {e}"
            ) from None
        self._progress.report(text)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def stop_reason(self) -> Optional[str]:
        return self._reason

    async def wait_cancelled(self) -> str:
        """Returns the stop reason once the pool asks the job to stop."""
        if self._async_event is None:
            self._async_event = asyncio.Event()
            if self.cancel_event.is_set():
                self._async_event.set()
        await self._async_event.wait()
        return self._reason or "cancelled"

    def _stop(self, reason: str) -> None:
        """Called by the worker (any thread) when the pool asks the job to stop."""
        if self.cancel_event.is_set():
            return
        self._reason = reason
        self.cancel_event.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._set_async)

    def _set_async(self) -> None:
        if self._async_event is not None:
            self._async_event.set()

    def __repr__(self) -> str:
        return (
            f"JobContext(id={self.id}, kind={self.kind!r}, attempt={self.attempt}/"
            f"{self.max_attempts}, stop_reason={self._reason!r})"
        )
