"""Engine and session factory. SQLite runs in WAL mode with a busy timeout."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.fastjson import json_dumps, json_loads

SQLITE_BUSY_TIMEOUT_MS = 10_000
# the JSON columns (FSM data, answers, the replies kept with each update...) through orjson: the standard
# library's encoder and decoder were 4 % of an update's CPU in the profile
JSON_COLUMNS: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}


def _prepare_sqlite_path(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _journal_mode_wal(cursor: Any) -> None:
    """Switching a database file to WAL needs it to itself, and SQLite may refuse at once ("database is
    locked", without its busy wait) while another process opens the same new file; so wait here, as long
    as the busy timeout. Once a file is in WAL mode it stays, and this returns at the first try."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # blocks the event loop, only while processes open one new file together
        pause = min(pause * 2, 0.2)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        _prepare_sqlite_path(url)
        extra: dict[str, Any] = {}
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        one_hop = make_url(url).get_driver_name() == "aiosqlite"
        if one_hop:
            from bot.db.sqlite_driver import dbapi

            extra["module"] = dbapi()  # at most one thread hop per statement (see bot/db/sqlite_driver.py)
            connect_args["check_same_thread"] = False  # its statements in the loop's thread, one at a time
        engine = create_async_engine(url, echo=echo, connect_args=connect_args, **JSON_COLUMNS, **extra)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            _journal_mode_wal(cursor)
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if one_hop:  # the driver checkpoints the WAL itself, in its thread (bot/db/sqlite_driver.py)
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, **JSON_COLUMNS)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def create_schema(engine: AsyncEngine) -> None:
    """Migrate the database to the newest schema revision (Alembic, `bot/migrations/`): a brand-new
    database is created, an up-to-date one costs a single query, replicas starting together migrate once,
    and a database made by the old `create_all` is adopted. See `bot.db.migrate`."""
    from bot.db.migrate import upgrade

    await upgrade(engine)
