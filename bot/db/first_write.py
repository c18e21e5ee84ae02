"""PostgreSQL: an update's transaction begins at its first write, and a write that is all of it commits
by itself.

An update of the dialogue is a read (the unit of work's first read: its markers, the prospect, the FSM
row), the handler, and its last writes, sent as one statement at the commit (`bot.db.tail`). In a
transaction that is four round trips: BEGIN, the read, the writes, COMMIT. There the BEGIN and the COMMIT
add nothing:

* under READ COMMITTED (the bot's isolation level, PostgreSQL's default) a statement reads the rows
  committed when it starts, in a transaction or not; what a transaction adds to a read is its own earlier
  writes, and before the first write there are none. No statement of the bot locks rows (no FOR UPDATE);
* one statement is atomic on its own: its writes all land or none does (a duplicate marker fails all of
  it, as it failed the transaction).

So while an update is handled (`first_write()`, set by the unit of work), a connection that begins reads
in autocommit (no BEGIN). The first statement that is not a SELECT begins the transaction: asyncpg's
adapter sends BEGIN before it, and everything after it is in that transaction, as before. At the commit,
when nothing was written yet and the last writes are one statement (`ALONE`), that statement goes by
itself in autocommit and the COMMIT has nothing to send: a button press is two round trips (was four).
Anything else (an ORM flush, a handler's UPDATE, last writes that need two statements) is one transaction
as before, and a rollback undoes it. A connection goes back to the pool in its usual mode.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALONE = "leadbot_alone"  # execution option: the update's only write, whole in one statement
_LATE = "leadbot_begin_at_first_write"  # on a pooled connection's info: it reads in autocommit for now
_handling: ContextVar[bool] = ContextVar("begin_at_first_write", default=False)


class first_write(contextlib.AbstractContextManager[None], contextlib.AbstractAsyncContextManager[None]):
    """`with first_write():` or `async with first_write():` transactions that begin in it begin at their
    first write (PostgreSQL; see above)."""

    def __enter__(self) -> None:
        self._token = _handling.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _handling.reset(self._token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()


def install(engine: AsyncEngine) -> None:
    """On a PostgreSQL engine (asyncpg): its connections begin at the first write inside `first_write()`."""
    if engine.dialect.name != "postgresql":
        return
    sync = engine.sync_engine

    @event.listens_for(sync, "begin")
    def _reads_first(connection: Connection) -> None:
        if _handling.get():
            connection.connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            connection.info[_LATE] = True

    @event.listens_for(sync, "before_execute")
    def _begin_at_write(connection: Connection, clause: Any, multiparams: Any, params: Any,
                        execution_options: Any) -> None:
        if connection.info.get(_LATE) and not getattr(clause, "is_select", False) \
                and not execution_options.get(ALONE):
            del connection.info[_LATE]
            connection.connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]

    @event.listens_for(sync, "checkin")
    def _as_usual(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_LATE, False) and dbapi_connection is not None:
            dbapi_connection.autocommit = False


def alone(connection: Connection) -> dict[str, Any] | None:
    """The execution options of an update's last writes when they are one statement: in autocommit when
    nothing was written before them."""
    return {ALONE: True} if connection.info.get(_LATE) else None
