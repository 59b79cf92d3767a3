"""Exceptions: what Errand's engine raises, and what a handler raises to say how its job ends."""

from __future__ import annotations

from ._native import ErrandError, InvalidError, NotFoundError

__all__ = [
    "ErrandError",
    "InvalidError",
    "NotFoundError",
    "NotSerializable",
    "Permanent",
    "RetryAfter",
]


class NotSerializable(InvalidError, TypeError):
    """A task was deferred with an argument that is not JSON; the message names it."""


class Permanent(Exception):
    """Raised by a handler: the job fails for good, whatever attempts remain."""


class RetryAfter(Exception):
    """Raised by a handler: retry after ``seconds``, whatever the task's backoff says (the
    attempt still counts)."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds}s")
        self.seconds = float(seconds)
