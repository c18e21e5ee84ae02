"""PostgreSQL: an update's first read goes without BEGIN, and last writes that are all that follows it
commit by themselves.

An update of the dialogue is a read (the unit of work's first read: its markers, the prospect, the FSM
row), the handler, and its last writes, sent as one statement at the commit (`bot.db.tail`). In a
transaction that is four round trips: BEGIN, the read, the writes, COMMIT. There the BEGIN and the COMMIT
add nothing:

* under READ COMMITTED (the bot's isolation level, PostgreSQL's default) a statement reads the rows
  committed when it starts, in a transaction or not; what a transaction adds to a read is its own earlier
  writes, and before the first write there are none. No statement of the bot locks rows (no FOR UPDATE);
* one statement is atomic on its own: its writes all land or none does (a duplicate marker fails all of
  it, as it failed the transaction).

So while an update is handled (`first_read()`, around the unit of work), the connection its session
begins on reads the first statement (the first read) in autocommit, with no BEGIN; after it
(`read_done()`) the connection is back to its usual mode, and the next statement, whatever it is, begins the
transaction (asyncpg's adapter sends BEGIN before it). At the commit, when no statement came between the
first read and the last writes, and those are one statement (`bot.db.tail`), that statement goes alone in
autocommit and the COMMIT has nothing to send: a button press is two round trips (was four). Anything
else is one transaction as before, and a rollback undoes it. Sessions that begin after the first read
(a handler's own) are as usual, and a connection goes back to the pool in its usual mode.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

_ON = "leadbot_first_read_alone"  # on a pooled connection's info: its engine is set up for this (`install`)
_LATE = "leadbot_begin_after_first_read"  # on a pooled connection's info: its first read went in autocommit
_update: ContextVar[first_read | None] = ContextVar("begin_after_first_read", default=None)


class first_read(contextlib.AbstractContextManager["first_read"],
                  contextlib.AbstractAsyncContextManager["first_read"]):
    """`with first_read() as first:` (or `async with`): the first connection that begins in it reads its
    first statement in autocommit; `first.read_done()` once that statement has run."""

    __slots__ = ("_token", "connection", "reading")

    def __init__(self) -> None:
        self.reading = True
        self.connection: Connection | None = None  # the one that began while reading

    def read_done(self) -> None:
        self.reading = False
        if self.connection is not None:
            self.connection.connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]

    def __enter__(self) -> Self:
        self._token = _update.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _update.reset(self._token)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


class ReadFirstSession(Session):
    """The sessions of an engine that `reads_first` (`bot.db.engine.create_session_factory`): only theirs
    run the listener below, so that SQLite's pay nothing for it (0.3 % of an update's instructions)."""


@event.listens_for(ReadFirstSession, "after_begin")
def _read_first(session: Session, transaction: Any, connection: Connection) -> None:
    """A session's transaction has a connection, before any statement: the update's first one reads in
    autocommit. (A session event: an engine's "begin" listener would put every statement of the engine on
    SQLAlchemy's slower path for connection events, 2 % of an update's instructions.)"""
    update = _update.get()
    if update is not None and update.reading and update.connection is None and connection.info.get(_ON):
        connection.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        connection.info[_LATE] = True
        update.connection = connection


class _NoFirstRead(contextlib.AbstractAsyncContextManager["_NoFirstRead"]):
    """For an engine where every transaction begins as usual (SQLite): nothing to set up or undo."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def read_done(self) -> None:
        return None


NO_FIRST_READ = _NoFirstRead()


def reads_first(engine: AsyncEngine) -> bool:
    """An engine whose updates read first without BEGIN (PostgreSQL, through `install`)."""
    return engine.dialect.name == "postgresql"


def install(engine: AsyncEngine) -> None:
    """On a PostgreSQL engine (asyncpg): an update's first read goes without BEGIN (see above)."""
    if not reads_first(engine):
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _on(_dbapi_connection: Any, record: Any) -> None:
        record.info[_ON] = True

    @event.listens_for(engine.sync_engine, "checkin")
    def _as_usual(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_LATE, False) and dbapi_connection is not None:
            dbapi_connection.autocommit = False


@contextlib.contextmanager
def alone(connection: Connection, statements: int) -> Iterator[None]:
    """Around an update's last writes: when they are one statement and nothing came between the first read
    and them (no transaction begun), that statement goes in autocommit, on its own."""
    if statements != 1 or not connection.info.get(_LATE) \
            or connection.connection.driver_connection.is_in_transaction():  # type: ignore[union-attr]
        yield
        return
    adapter = connection.connection.dbapi_connection
    adapter.autocommit = True  # type: ignore[union-attr]
    try:
        yield
    finally:
        adapter.autocommit = False  # type: ignore[union-attr]
