"""The application's own tables (SQLAlchemy), in the same database as Errand's."""

from __future__ import annotations

import os

from sqlalchemy import String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: One database for the app and its jobs: an SQLite file or a postgres:// URL, as Errand takes.
DATABASE = os.environ.get("DATABASE", "app.db")


def sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return "sqlite:///" + url.removeprefix("sqlite:")


engine = create_engine(sqlalchemy_url(DATABASE))

if engine.dialect.name == "sqlite":
    # Errand's workers write the same file: a transaction of the app takes the write lock at
    # BEGIN (IMMEDIATE) and stays short, so neither side finds the file locked mid-way.
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    welcomed: Mapped[bool] = mapped_column(default=False)
