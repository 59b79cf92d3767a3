"""defer_in: a job written through the application's own connection, in its transaction:
there when the transaction commits, absent when it rolls back, with the task's settings and
the unique-key rule shared with defer. psycopg 3 (sync and async) and SQLAlchemy (Session,
AsyncSession) on PostgreSQL; sqlite3 and SQLAlchemy on SQLite."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

import errand


def make_app(url: str):
    app = errand.App(url)

    @app.task(queue="email", max_attempts=5)
    def welcome(user_id: int) -> None: ...

    app.client.stats()  # opened and migrated: the SQL enqueue is installed
    return app, welcome


def sqlalchemy_url(url: str, driver: str = "psycopg") -> str:
    if url.startswith("postgres"):
        return f"postgresql+{driver}://" + url.split("://", 1)[1]
    return "sqlite:///" + url


def lite_engine(url: str):
    engine = create_engine(sqlalchemy_url(url))

    @event.listens_for(engine, "connect")
    def _(dbapi, _record):
        dbapi.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def kinds(app) -> list:
    return [(j.kind, j.args) for j in app.client.list(limit=100).jobs]


def check_committed(app, e: errand.Enqueued, user_id: int) -> None:
    assert e.inserted
    job = app.client.job(e.id)
    assert (job.kind, job.queue, job.max_attempts, job.args) == ("welcome", "email", 5, {"user_id": user_id})


def test_sqlalchemy_session_commit_and_rollback(url):
    app, welcome = make_app(url)
    engine = lite_engine(url) if not url.startswith("postgres") else create_engine(sqlalchemy_url(url))
    with Session(engine) as session, session.begin():
        session.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)"))
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO users VALUES (1, 'ada@example.com')"))
        e = welcome.configure(reference=("user", 1)).defer_in(session, user_id=1)
    check_committed(app, e, 1)
    assert app.client.job(e.id).reference == errand.Reference(type="user", id="1")

    with pytest.raises(RuntimeError, match="changed my mind"):
        with Session(engine) as session, session.begin():
            session.execute(text("INSERT INTO users VALUES (2, 'bob@example.com')"))
            welcome.defer_in(session, user_id=2)
            raise RuntimeError("changed my mind")
    assert kinds(app) == [("welcome", {"user_id": 1})], "the rolled-back job does not exist"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM users")).scalar() == 1

    # A Connection works as a Session does.
    with engine.begin() as conn:
        e3 = welcome.defer_in(conn, user_id=3)
    check_committed(app, e3, 3)
    engine.dispose()


def test_unique_keys_are_shared_with_defer(url):
    app, welcome = make_app(url)
    first = welcome.configure(unique_key="welcome:9").defer(user_id=9)
    engine = lite_engine(url) if not url.startswith("postgres") else create_engine(sqlalchemy_url(url))
    with Session(engine) as session, session.begin():
        again = welcome.configure(unique_key="welcome:9").defer_in(session, user_id=9)
    assert (again.id, again.inserted) == (first.id, False)
    engine.dispose()


def test_non_ascii_args_at_the_size_limit_are_taken_by_defer_and_defer_in(url):
    # 1 MiB of args counted in UTF-8 bytes of the compact text: 349,520 three-byte characters
    # plus `{"user_id":""}` is 2 bytes under the limit. Escaped as \\u20ac, twice over.
    app, welcome = make_app(url)
    name = "\u20ac" * ((1024 * 1024 - 16) // 3)
    by_defer = welcome.defer(user_id=name)
    engine = lite_engine(url) if not url.startswith("postgres") else create_engine(sqlalchemy_url(url))
    with Session(engine) as session, session.begin():
        by_defer_in = welcome.defer_in(session, user_id=name)
    engine.dispose()
    for e in (by_defer, by_defer_in):
        assert e.inserted
        assert app.client.job(e.id).args == {"user_id": name}
    with pytest.raises(errand.InvalidError, match="over the limit"):
        welcome.defer_in(object(), user_id=name + "\u20ac")


def test_bad_arguments_are_refused_before_any_sql(url):
    app, welcome = make_app(url)
    with pytest.raises(errand.NotSerializable, match="argument `user_id`"):
        welcome.defer_in(object(), user_id={1, 2})
    with pytest.raises(errand.InvalidError, match="queue"):
        welcome.configure(queue="not a queue").defer_in(object(), user_id=1)
    with pytest.raises(TypeError, match="defer_in takes a psycopg 3 connection"):
        welcome.defer_in(object(), user_id=1)


def test_psycopg_connection_and_cursor(pg_url):
    app, welcome = make_app(pg_url)
    with psycopg.connect(pg_url) as conn:
        e = welcome.defer_in(conn, user_id=1)
        assert app.client.job(e.id) is None, "not visible before the commit"
        conn.commit()
        check_committed(app, e, 1)
        with conn.cursor() as cur:
            e2 = welcome.defer_in(cur, user_id=2)
        conn.rollback()
    assert app.client.job(e2.id) is None
    assert kinds(app) == [("welcome", {"user_id": 1})]


async def test_psycopg_async_and_sqlalchemy_async_session(pg_url):
    app, welcome = make_app(pg_url)
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        e = await welcome.defer_in_async(conn, user_id=1)
        await conn.commit()
        with pytest.raises(TypeError, match="defer_in_async"):
            welcome.defer_in(conn, user_id=9)
    check_committed(app, e, 1)
    engine = create_async_engine(sqlalchemy_url(pg_url))
    async with AsyncSession(engine) as session:
        async with session.begin():
            e2 = await welcome.defer_in_async(session, user_id=2)
        async with session.begin():
            e3 = await welcome.defer_in_async(session, user_id=3)
            await session.rollback()
    await engine.dispose()
    check_committed(app, e2, 2)
    assert app.client.job(e3.id) is None


def test_sqlite3_connection_in_its_own_transaction(tmp_path):
    url = str(tmp_path / "lite.db")
    app, welcome = make_app(url)
    conn = sqlite3.connect(url, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        e = welcome.defer_in(conn, user_id=1)
        conn.execute("COMMIT")
        check_committed(app, e, 1)
        conn.execute("BEGIN IMMEDIATE")
        welcome.defer_in(conn.cursor(), user_id=2)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    assert kinds(app) == [("welcome", {"user_id": 1})]
    with app.start_worker(poll_interval="20ms"):
        from conftest import wait_job

        assert wait_job(app, e.id, "succeeded").status == "succeeded"


DJANGO = '''
import json, sys
from urllib.parse import urlsplit
import django
from django.conf import settings
import errand

url = sys.argv[1]
if url.startswith("postgres"):
    u = urlsplit(url)
    db = {"ENGINE": "django.db.backends.postgresql", "NAME": u.path.lstrip("/"),
          "USER": u.username, "HOST": u.hostname, "PORT": u.port}
else:
    db = {"ENGINE": "django.db.backends.sqlite3", "NAME": url}
settings.configure(DATABASES={"default": db}, INSTALLED_APPS=[])
django.setup()
from django.db import connection, transaction

app = errand.App(url)

@app.task(queue="email", max_attempts=5)
def welcome(user_id: int) -> None: ...

app.client.stats()
with transaction.atomic():
    kept = welcome.defer_in(connection, user_id=1)
try:
    with transaction.atomic():
        dropped = welcome.defer_in(connection, user_id=2)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
print(json.dumps({"kept": kept.id, "dropped": dropped.id}))
'''


def test_django_connection_commit_and_rollback(url, tmp_path):
    import json
    import subprocess
    import sys

    script = tmp_path / "django_defer.py"
    script.write_text(DJANGO)
    out = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    app = errand.App(url)
    job = app.client.job(ids["kept"])
    assert (job.kind, job.queue, job.max_attempts, job.args) == ("welcome", "email", 5, {"user_id": 1})
    assert app.client.job(ids["dropped"]) is None
