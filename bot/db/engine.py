"""Engine and session factory. SQLite runs in WAL mode with a busy timeout."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from bot.db.first_read import ReadFirstSession, reads_first
from bot.db.first_read import install as begin_at_first_read
from bot.fastjson import json_dumps, json_loads

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A pooled server connection is checked with a ping before use only when it has been idle this long
# (`ping_when_idle`); one in use a moment ago is taken as it is
PING_AFTER_IDLE_S = 5.0
_LAST_USED = "leadbot_last_used"
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


POOL_SIZE = 20


def create_engine(url: str, *, echo: bool = False, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """SQLite (WAL, one writer at a time, see `bot.db.sqlite_driver`) or a server database with a pool of
    `pool_size` connections, all kept open."""
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
    # No overflow connections: under a burst SQLAlchemy's pool closes one as it comes back whenever the
    # pool looks full before the waiting updates have woken to take theirs, and opens another for the next
    # waiter. That was 50 connections a second in the 500-prospect benchmark (a server process forked for
    # each, its statements prepared anew), a fifth of the throughput.
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0, **JSON_COLUMNS)
    ping_when_idle(engine)
    begin_at_first_read(engine)  # an update's first read goes without BEGIN (bot/db/first_read.py)
    return engine


def ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection that has sat in the pool `PING_AFTER_IDLE_S`
    or more.

    The pre-ping is a round trip before every transaction: on PostgreSQL one of an update's seven, about a
    tenth of the bot's CPU for an update in the profile (each round trip is a send, a wake-up and a read).
    A connection the pool handed out a moment ago is as alive as the ping would say. After a quiet spell
    (the server restarted overnight, a proxy dropped idle sockets) the ping runs as before, and a dead
    connection is replaced before anything uses it. A server that goes away under load fails the
    statements already on its connections either way: the unit of work takes that as transient (the update
    is handled again), and SQLAlchemy then renews the whole pool."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _used(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is None or time.monotonic() - last < PING_AFTER_IDLE_S:  # brand new, or in use a moment ago
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"the idle connection did not answer a ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("the idle connection did not answer a ping")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True,
                              sync_session_class=ReadFirstSession if reads_first(engine) else Session)


async def create_schema(engine: AsyncEngine) -> None:
    """Migrate the database to the newest schema revision (Alembic, `bot/migrations/`): a brand-new
    database is created, an up-to-date one costs a single query, replicas starting together migrate once,
    and a database made by the old `create_all` is adopted. See `bot.db.migrate`."""
    from bot.db.migrate import upgrade

    await upgrade(engine)
