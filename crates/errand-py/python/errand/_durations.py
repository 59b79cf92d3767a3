"""Durations as the Python API takes them (``"30s"``, a number of seconds, a ``timedelta``),
turned into milliseconds by the engine's own reader of ``errand.toml`` durations."""

from __future__ import annotations

import datetime
from typing import Union

from . import _native

Duration = Union[str, int, float, datetime.timedelta]


def to_ms(field: str, value: Duration) -> int:
    """Milliseconds of ``value``; ``ValueError`` naming ``field`` if it is not a duration."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{field}: a duration cannot be negative, got {value!r}")
        return int(round(value * 1000))
    if isinstance(value, str):
        return _native.parse_duration_ms(field, value)
    raise ValueError(f"{field}: expected a duration (\"30s\", seconds, timedelta), got {value!r}")
