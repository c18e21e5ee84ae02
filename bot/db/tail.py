"""The writes an update makes last, held until just before its commit and sent there together.

Every update ends with the same small writes: its dedupe markers (`bot.middlewares`) and its FSM row
(`bot.storage`). Each was a statement of its own, and on PostgreSQL each statement is a round trip: a send,
a wake-up and a read, about 0.15 ms of the bot's CPU apiece in the profile, more than the statement
itself. Here they wait in the session (`defer`) and go out in `before_commit`:

* on PostgreSQL, as one statement: all but the last as data-modifying WITH clauses of the last
  (`WITH w0 AS (INSERT ...), w1 AS (INSERT ...) UPDATE ...`). They run in one snapshot, and none sees
  another's changes: so two writes of the same table never share a statement (PostgreSQL applies only
  one of two changes to the same row there); the second starts the next statement. A failing one (a
  duplicate marker) fails the statement, and so the transaction, as it did alone. When they are one
  statement and none came between the update's first read and them, it goes alone in autocommit, with
  no BEGIN or COMMIT (`bot.db.first_read`);
* elsewhere (SQLite, where a statement is a call in this process and costs no round trip), one by one.

A rollback drops what is waiting, with the rest of the transaction.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Insert, Table, Update, bindparam, event
from sqlalchemy import insert as sa_insert
from sqlalchemy import update as sa_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bot.db.first_read import alone

TAIL = "leadbot_tail"
_Statement = Insert | Update


class Deferred:
    """A kind of deferred write: `build(prefix)` makes its statement (one INSERT or UPDATE), each of its
    parameters named `prefix` + the name the caller gives it a value under."""

    __slots__ = ("build", "name", "plain", "table")

    def __init__(self, name: str, build: Callable[[str], _Statement]) -> None:
        self.name, self.build = name, build
        self.plain = build("")
        self.table = self.plain.table

    def __repr__(self) -> str:
        return f"Deferred({self.name!r})"

    @classmethod
    def insert(cls, name: str, table: Table, columns: Sequence[str]) -> Deferred:
        """An INSERT of one row into `table`, a value for every one of `columns` given each time."""
        return cls(name, lambda prefix: sa_insert(table).values(_binds(table, columns, prefix)))

    @classmethod
    def update(cls, name: str, table: Table, columns: Sequence[str], keys: dict[str, str]) -> Deferred:
        """An UPDATE of `columns` in the row of `table` that `keys` pick: column -> the name of its value,
        not the column's own (SQLAlchemy keeps those for the values set)."""
        return cls(name, lambda prefix: sa_update(table).where(
            *(table.c[column] == bindparam(prefix + given, type_=table.c[column].type) for column, given in keys.items())
        ).values(_binds(table, columns, prefix)))


def _binds(table: Table, columns: Sequence[str], prefix: str) -> dict[str, Any]:
    return {c: bindparam(prefix + c, type_=table.c[c].type) for c in columns}


def defer(session: Session | AsyncSession, write: Deferred, params: dict[str, Any]) -> None:
    """`write` with `params` (by column), in this session's transaction, just before it commits."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not sync.in_transaction():  # so that a rollback, which ends only a begun one, drops it too
        sync.begin()  # no I/O: the connection is taken at the first statement
    sync.info.setdefault(TAIL, []).append((write, params))


_collectors: list[Callable[[Session], None]] = []


def collect(collector: Callable[[Session], None]) -> Callable[[Session], None]:
    """Have `collector(session)` run at each commit before the waiting writes go, to defer its own
    (the FSM storage writes back what an update set)."""
    _collectors.append(collector)
    return collector


_combined: dict[tuple[Deferred, ...], _Statement] = {}


def combined(writes: tuple[Deferred, ...]) -> _Statement:
    """One statement for these writes in this order, built once for each such sequence."""
    statement = _combined.get(writes)
    if statement is None:
        *first, last = (write.build(f"w{n}_") for n, write in enumerate(writes))
        statement = last
        for n, part in enumerate(first):
            statement = statement.add_cte(part.cte(f"w{n}"))
        _combined[writes] = statement
    return statement


@event.listens_for(Session, "before_commit")
def _send(session: Session) -> None:
    for collector in _collectors:
        collector(session)
    waiting: list[tuple[Deferred, dict[str, Any]]] | None = session.info.pop(TAIL, None)
    if not waiting:
        return
    session.flush()  # the ORM's changes first, as a session.execute would (rows these may refer to)
    connection = session.connection()
    if connection.dialect.name != "postgresql":  # (DML in WITH clauses)
        for write, params in waiting:
            connection.execute(write.plain, params)
        return
    batches = _batches(waiting)
    with alone(connection, len(batches)):  # one statement after the first read alone: autocommit
        for batch in batches:
            merged: dict[str, Any] = {}
            for n, (_write, params) in enumerate(batch):
                prefix = f"w{n}_"
                merged.update({prefix + name: value for name, value in params.items()})
            connection.execute(combined(tuple(write for write, _ in batch)), merged)


def _batches(waiting: list[tuple[Deferred, dict[str, Any]]]) -> list[list[tuple[Deferred, dict[str, Any]]]]:
    """The writes in order, cut before any that writes a table the statement being built already writes."""
    batches: list[list[tuple[Deferred, dict[str, Any]]]] = [[]]
    tables: set[Any] = set()
    for write, params in waiting:
        if write.table in tables:
            batches.append([])
            tables = set()
        batches[-1].append((write, params))
        tables.add(write.table)
    return batches


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(TAIL, None)
