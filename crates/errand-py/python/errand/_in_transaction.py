"""``defer_in``: a job written through the application's own database connection, inside the
application's own transaction, so that it exists exactly when the application's writes commit.

The job's fields come from the engine: ``prepare`` applies the app's task catalog and the
library's checks, exactly as ``defer`` does, and the statement only calls the SQL interface
Errand's migrations install for any language (docs/design.md, Enqueue from SQL): PostgreSQL's
``errand_enqueue()`` function, SQLite's ``errand_enqueue`` view with its INSTEAD OF trigger and
``errand_enqueue_result``. The connection must be to the database the app uses.

Connections understood: psycopg 3 (connection or cursor, sync or async), SQLAlchemy (``Session``,
``Connection``, ``AsyncSession``, ``AsyncConnection``), Python's ``sqlite3`` (connection or
cursor), and Django's ``django.db.connection``.

The SQL interface has no ``concurrency_key``: a job that has one (given with ``configure``, or
derived by its task from an argument) is refused here, naming the field, rather than written
without it (it would then run outside its key's limit). Such jobs are deferred with ``defer``.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, Tuple

from ._errors import InvalidError
from ._views import Enqueued

__all__ = ["call_for", "is_async_target", "refuse_keyed"]

# The fields of the SQL interface, in its parameter order.
FIELDS = (
    "kind",
    "args",
    "queue",
    "priority",
    "run_at",
    "delay_ms",
    "max_attempts",
    "unique_key",
    "reference_type",
    "reference_id",
    "timeout_ms",
)

# PostgreSQL: every parameter named and typed, NULL for "not given".
_PG = (
    "SELECT id, inserted FROM errand_enqueue("
    "CAST({kind} AS text), CAST({args} AS jsonb), "
    "queue => CAST({queue} AS text), priority => CAST({priority} AS integer), "
    "run_at => CAST({run_at} AS timestamptz), "
    "delay => CAST({delay_ms} AS double precision) * interval '1 millisecond', "
    "max_attempts => CAST({max_attempts} AS integer), unique_key => CAST({unique_key} AS text), "
    "reference_type => CAST({reference_type} AS text), "
    "reference_id => CAST({reference_id} AS text), "
    "timeout => CAST({timeout_ms} AS double precision) * interval '1 millisecond')"
)
# SQLite: the view's insert, then its outcome, in the same transaction.
_LITE = (
    "INSERT INTO errand_enqueue (kind, args, queue, priority, run_at, delay_ms, max_attempts, "
    "unique_key, reference_type, reference_id, timeout_ms) VALUES ({kind}, {args}, {queue}, "
    "{priority}, {run_at}, {delay_ms}, {max_attempts}, {unique_key}, {reference_type}, "
    "{reference_id}, {timeout_ms})"
)
_LITE_RESULT = "SELECT id, inserted FROM errand_enqueue_result"


def refuse_keyed(job: Dict[str, Any], source: str) -> None:
    """An ``InvalidError`` for a prepared job with a ``concurrency_key`` (the SQL enqueue
    would drop it); ``source`` says where the key came from. The key itself is not shown: it
    may be an argument's secret value."""
    if job.get("concurrency_key") is None:
        return
    raise InvalidError(
        f"defer_in: invalid job: `concurrency_key` ({source}) is not supported by Errand's SQL "
        "enqueue, which would write the job without it and so outside its key's limit; "
        "defer keyed jobs with defer or defer_async (they are then not part of your "
        "transaction)"
    )


def _values(job: Dict[str, Any]) -> Dict[str, Any]:
    refuse_keyed(job, "set on the job")
    values = {f: job.get(f) for f in FIELDS}
    # The engine's own text of the args (``prepare``'s ``args_text``): the bytes it sized are
    # the bytes the SQL interface sizes, so ``defer_in`` accepts exactly what ``defer`` does.
    values["args"] = job["args_text"]
    if values["run_at"] is not None:
        raise ValueError("defer_in takes a delay, not run_at")
    return values


def _statement(template: str, style: str) -> Tuple[str, List[str]]:
    """The template with placeholders of ``style`` (``format``, ``qmark``, ``named``) and
    the order of its parameters."""
    order: List[str] = []

    class Marks(dict):
        def __missing__(self, key: str) -> str:
            order.append(key)
            return {"format": "%s", "qmark": "?", "named": f":{key}"}[style]

    return template.format_map(Marks()), order


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def _dialect_of_sqlalchemy(target: Any) -> str:
    for get in (
        lambda t: t.dialect.name,
        lambda t: t.get_bind().dialect.name,
        lambda t: t.bind.dialect.name,
    ):
        try:
            return get(target)
        except Exception:  # noqa: BLE001 - try the next way to reach the dialect
            continue
    raise TypeError(f"cannot tell the database of {target!r}")


def is_async_target(target: Any) -> bool:
    name = type(target).__name__
    return name.startswith("Async") and _module(target).startswith(("psycopg", "sqlalchemy"))


def _dialect(target: Any) -> str:
    mod = _module(target)
    if isinstance(target, (sqlite3.Connection, sqlite3.Cursor)):
        return "sqlite"
    if mod.startswith("psycopg"):
        return "postgresql"
    if mod.startswith("sqlalchemy"):
        return _dialect_of_sqlalchemy(target)
    if hasattr(target, "vendor") and hasattr(target, "cursor"):  # Django
        return str(target.vendor)
    raise TypeError(
        f"defer_in takes a psycopg 3 connection or cursor, an SQLAlchemy Session or Connection "
        f"(sync or async), a sqlite3 connection or cursor, or a Django connection; got "
        f"{type(target).__module__}.{type(target).__name__}"
    )


def call_for(target: Any, job: Dict[str, Any]) -> Any:
    """Runs the SQL enqueue of ``job`` (prepared fields) on ``target``; returns ``Enqueued``,
    or for an async target a coroutine of it."""
    dialect = _dialect(target)
    values = _values(job)
    mod = _module(target)
    if dialect in ("postgresql", "postgres"):
        template, follow = _PG, None
    elif dialect == "sqlite":
        template, follow = _LITE, _LITE_RESULT
    else:
        raise TypeError(f"defer_in: Errand's SQL enqueue is on PostgreSQL and SQLite, not {dialect}")

    if mod.startswith("sqlalchemy"):
        from sqlalchemy import text

        sql, _ = _statement(template, "named")
        if is_async_target(target):

            async def run_async() -> Enqueued:
                result = await target.execute(text(sql), values)
                if follow is not None:  # the insert returns no row; its outcome does
                    result = await target.execute(text(follow))
                row = result.first()
                return Enqueued(id=int(row[0]), inserted=bool(row[1]))

            return run_async()
        result = target.execute(text(sql), values)
        if follow is not None:
            result = target.execute(text(follow))
        row = result.first()
        return Enqueued(id=int(row[0]), inserted=bool(row[1]))

    style = "qmark" if isinstance(target, (sqlite3.Connection, sqlite3.Cursor)) else "format"
    sql, order = _statement(template, style)
    params = [values[k] for k in order]
    if mod.startswith("psycopg") and is_async_target(target):

        async def run_psycopg_async() -> Enqueued:
            if hasattr(target, "cursor"):
                async with target.cursor() as cur:
                    await cur.execute(sql, params)
                    row = await cur.fetchone()
            else:
                await target.execute(sql, params)
                row = await target.fetchone()
            return Enqueued(id=int(row[0]), inserted=bool(row[1]))

        return run_psycopg_async()

    if isinstance(target, sqlite3.Connection) or (hasattr(target, "vendor") and hasattr(target, "cursor")) \
            or (mod.startswith("psycopg") and hasattr(target, "cursor")):
        cur = target.cursor()
        try:
            cur.execute(sql, params)
            row = cur.fetchone()
            if follow is not None:
                cur.execute(follow)
                row = cur.fetchone()
        finally:
            cur.close()
    else:  # a cursor
        target.execute(sql, params)
        row = target.fetchone()
        if follow is not None:
            target.execute(follow)
            row = target.fetchone()
    return Enqueued(id=int(row[0]), inserted=bool(row[1]))
