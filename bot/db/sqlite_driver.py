"""aiosqlite with at most one thread hop per statement instead of three or four, none for most of an update.

aiosqlite runs SQLite in a thread of its own, and SQLAlchemy's adapter awaits it once to open a cursor,
once to execute, once to fetch the rows and once to close the cursor: each is a queue put, a thread
wake-up and a loop wake-up (`call_soon_threadsafe`); with ~10 statements an update, the event loop's own
work was 17-20 % of the bot's CPU in the profile, much of it these wake-ups. Here a statement runs whole - cursor, execute, fetch, close - in one call
in aiosqlite's thread; the adapter then serves `description`, `rowcount`, `lastrowid` and the rows from
what that call returned. Transactions, server-side cursors (`stream()`), errors and the busy timeout are
aiosqlite's, unchanged.

While an update is handled (`in_place()`, set by the unit of work) a statement may run in the event
loop's own thread, with no hop at all, when it cannot wait for a lock or run long:

* a write that would take the transaction's write lock (its first write) runs in place with no busy
  wait: if another connection holds that lock, SQLite refuses at once, before changing anything, and the
  statement goes to the thread, to wait there for up to the busy timeout as before; once a write of the
  transaction has succeeded, it holds the lock, and its further statements cannot wait for it;
* a read never waits for a lock in WAL mode; a SELECT that is still running after `READ_BUDGET` virtual
  machine steps (a report over many rows, not a lookup by key) is interrupted by a progress handler and
  run again in the thread, which a read can be without effect;
* COMMIT of a transaction holding the write lock, in WAL mode: it appends to the WAL and needs no lock.
  SQLite's automatic checkpoint (copying the WAL back into the database, with an fsync, every 1,000
  pages) would run inside that COMMIT: the engine switches it off (`wal_autocheckpoint=0`) and every
  `CHECKPOINT_EVERY`-th commit of a connection goes to the thread, followed there by a passive
  checkpoint. ROLLBACK stays in the thread.

So an update of the dialogue makes no trip to the thread at all, unless another writer holds the lock
or its commit is one that checkpoints. Outside an update (the delivery worker, maintenance, migrations)
every statement and commit goes to the thread, as before.
The sqlite3 connection is opened with `check_same_thread=False` for this; it is still used by one
thread at a time, since every statement on it is awaited under the connection's mutex.

Used by `bot.db.engine.create_engine` for `sqlite+aiosqlite` URLs (`create_async_engine(..., module=)`).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

log = logging.getLogger(__name__)
Outcome = tuple[Any, list[Any] | None, int, int | None]
_in_place: ContextVar[bool] = ContextVar("sqlite_in_place", default=False)
PROGRESS_EVERY = 1000  # virtual machine steps between two calls of the progress handler
READ_BUDGET = 20  # calls of it (20,000 steps, a millisecond or so) before a SELECT moves to the thread
CHECKPOINT_EVERY = 100  # commits of a connection between two checkpoints of the WAL (about 1,000 pages)


class in_place(contextlib.AbstractAsyncContextManager[None]):
    """`async with in_place():` statements of this task may run in the event loop's thread (see above);
    `async with in_place(False):` they do not, for work inside an update whose writes may scan a table."""

    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed

    async def __aenter__(self) -> None:
        self._token = _in_place.set(self.allowed)

    async def __aexit__(self, *exc_info: object) -> None:
        _in_place.reset(self._token)


class _TooLong(Exception):
    """A SELECT ran past its budget in the event loop's thread."""


class _Busy(Exception):
    """Another connection holds the write lock: the first write of a transaction must wait, in the thread."""


def _run_in_place(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    calls = 0

    def progress() -> int:
        nonlocal calls
        calls += 1
        return int(calls > READ_BUDGET)

    conn.set_progress_handler(progress, PROGRESS_EVERY)
    try:
        return _run(conn, operation, parameters, many)
    except sqlite3.OperationalError:
        if calls > READ_BUDGET:
            raise _TooLong from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


def _take_lock_in_place(conn: sqlite3.Connection, operation: str, parameters: Any, busy_timeout_ms: int) -> Outcome:
    """The transaction's first write, with no busy wait: SQLITE_BUSY comes before anything is changed (the
    write lock is taken before the first page is), so the statement can then run again in the thread."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        return _run(conn, operation, parameters, False)
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
            raise _Busy from None
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


WRITES = ("INSERT", "UPDATE", "DELETE")


def _may_run_in_place(head: str, holds_write_lock: bool) -> bool:
    """Cannot wait for a lock (see the module's docstring); a SELECT can also be interrupted and re-run.
    A transaction holds the write lock once a write of it succeeded (an open transaction alone may not:
    a deferred BEGIN or a SAVEPOINT takes no lock)."""
    return head == "SELECT" or (holds_write_lock and head in WRITES)


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """In aiosqlite's thread: the whole statement."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: nothing to open
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor was closed in the thread already

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._go(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._go(operation, seq_of_parameters, many=True)

    def _go(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            await_(self._execute_once(operation, parameters, many))
        except Exception as error:  # noqa: BLE001 - translated into the DBAPI error, as SQLAlchemy does
            self._adapt_connection._handle_exception(error)

    async def _execute_once(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection: aiosqlite.Connection = self._connection
            conn = connection._conn
            adapt: OneHopConnection = self._adapt_connection
            head = operation.lstrip()[:6].upper()
            outcome: Outcome | None = None
            if _in_place.get() and not many:
                if _may_run_in_place(head, adapt.holds_write_lock and conn.in_transaction):
                    with contextlib.suppress(_TooLong):
                        outcome = _run_in_place(conn, operation, parameters, many)
                elif head in WRITES:
                    with contextlib.suppress(_Busy):
                        outcome = _take_lock_in_place(conn, operation, parameters, adapt.busy_timeout_ms(conn))
            if outcome is None:
                outcome = await connection._execute(_run, conn, operation, parameters, many)
            if conn.in_transaction and head in WRITES:
                adapt.holds_write_lock = True
            description, rows, rowcount, lastrowid = outcome
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows or ())

    def nextset(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


def _checkpoint(conn: sqlite3.Connection) -> None:
    """In aiosqlite's thread: copy what the WAL holds back into the database, as far as readers allow."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_busy_timeout_ms", "_commits", "_wal", "holds_write_lock")
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.holds_write_lock = False  # a write of the open transaction succeeded
        self._busy_timeout_ms: int | None = None
        self._wal: bool | None = None
        self._commits = 0

    def _in_wal_mode(self, conn: sqlite3.Connection) -> bool:
        if self._wal is None:
            self._wal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        return self._wal

    def busy_timeout_ms(self, conn: sqlite3.Connection) -> int:
        """The connection's busy timeout, as the engine set it on connecting (read once)."""
        if self._busy_timeout_ms is None:
            self._busy_timeout_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        return self._busy_timeout_ms

    def rollback(self) -> None:
        # the pool rolls back every connection it takes back, mostly with no transaction open (the
        # update committed): sqlite3 would do nothing then, after a trip to the thread
        self.holds_write_lock = False
        if self._connection._connection and self._connection._conn.in_transaction:
            super().rollback()

    def commit(self) -> None:
        holds_write_lock, self.holds_write_lock = self.holds_write_lock, False
        if not (self._connection._connection and self._connection._conn.in_transaction):
            return
        conn = self._connection._conn
        self._commits += 1
        checkpoint = self._commits % CHECKPOINT_EVERY == 0
        if holds_write_lock and _in_place.get() and not checkpoint and self._in_wal_mode(conn):
            try:
                conn.commit()  # see the module's docstring: appends to the WAL, waits for no lock
            except Exception as error:  # noqa: BLE001 - translated into the DBAPI error, as SQLAlchemy does
                self._handle_exception(error)
            return
        super().commit()
        if checkpoint:
            try:
                await_(self._connection._execute(_checkpoint, conn))
            except Exception as error:  # noqa: BLE001 - committed all the same; the next one checkpoints
                log.warning("WAL checkpoint failed: %s", error)


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        return OneHopConnection(self, connection._connection)


def dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)


def closes_in_place(engine: Any) -> bool:
    """A session on this engine, its transaction ended, closes without an await that suspends: giving the
    connection back to the pool rolls back nothing, with no trip to the thread (`OneHopConnection.rollback`).
    So it need not be closed in a task of its own, shielded from cancellation, as SQLAlchemy's `async with
    session` does for any driver (a task and two more rounds of the event loop for every update)."""
    return isinstance(getattr(engine.dialect, "loaded_dbapi", None), OneHopDBAPI)
