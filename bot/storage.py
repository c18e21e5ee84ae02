"""Persistent aiogram FSM storage on the project database.

Inside an update the storage joins the update's own session (set by the unit-of-work middleware
through `current_session`), so the conversation state commits atomically with the lead data it
describes: a crash before the commit loses neither, and a redelivered update replays cleanly.
Outside an update (tests, tools) it opens and commits a short session of its own.

A key is read once per session, with a Core statement, and kept in `session.info`; what aiogram sets
(state and data, several times an update) is written once, as one INSERT or UPDATE, just before the
session commits, with the update's other last writes (`bot.db.tail`: one statement on PostgreSQL); a
rollback forgets it. The ORM's unit of work (an
identity-mapped object per key, its change tracking and flush) cost an update about a tenth of its CPU
for what is a key-value row.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy import bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.db.models import FSMRecord, utcnow
from bot.db.tail import Deferred, collect, defer

FSM_CACHE = "fsm_records"
current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)

_table = FSMRecord.__table__
READ = select(_table.c.state, _table.c.data).where(_table.c.key == bindparam("fsm_key"))
INSERT = Deferred.insert("fsm_insert", _table, ("key", "state", "data", "updated_at"))
UPDATE = Deferred.update("fsm_update", _table, ("state", "data", "updated_at"), keys={"key": "fsm_key"})


@dataclass(slots=True)
class _Row:
    state: str | None
    data: dict[str, Any]
    stored: bool  # the database has a row for the key
    dirty: bool = False

    @classmethod
    def of(cls, found: tuple[str | None, dict[str, Any] | None] | None) -> _Row:
        """From the database's (state, data), or None when it has no row for the key."""
        return cls(found[0], found[1] or {}, True) if found is not None else cls(None, {}, False)


def _cache(session: Session | AsyncSession) -> dict[str, _Row]:
    return session.info.setdefault(FSM_CACHE, {})


def seed(session: Session | AsyncSession, key: str, found: tuple[str | None, dict[str, Any] | None] | None) -> None:
    """The key's row as another statement of this session read it (the unit of work reads it with the
    update's markers and prospect, `bot.middlewares.FIRST_READ`): kept as if read here. `found` is the
    row's (state, data), or None when the database has no row."""
    _cache(session).setdefault(key, _Row.of(found))


@collect
def _write_back(session: Session) -> None:
    """What this session's updates set, one write per key, in the transaction being committed."""
    for key, row in session.info.get(FSM_CACHE, {}).items():
        if not row.dirty:
            continue
        if row.stored:
            defer(session, UPDATE, {"fsm_key": key, "state": row.state, "data": row.data, "updated_at": utcnow()})
        elif row.state is not None or row.data:  # an empty record is not created
            defer(session, INSERT, {"key": key, "state": row.state, "data": row.data, "updated_at": utcnow()})
            row.stored = True
        row.dirty = False


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(FSM_CACHE, None)  # what was set is rolled back; what was read may be stale


class SQLAlchemyStorage(BaseStorage):
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], key_builder: KeyBuilder | None = None
    ) -> None:
        self.session_factory = session_factory
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    def key_of(self, key: StorageKey) -> str:
        return self.key_builder.build(key)

    @asynccontextmanager
    async def _row(self, key: StorageKey) -> AsyncIterator[_Row]:
        """The key's row, in the update's session, or in a short one of its own that commits it."""
        session = current_session.get()
        if session is not None:
            yield await self._read(session, self.key_of(key))
            return
        async with self.session_factory() as own, own.begin():
            yield await self._read(own, self.key_of(key))

    @staticmethod
    async def _read(session: AsyncSession, key: str) -> _Row:
        # aiogram reads the state and data several times per update: one query, a missing row remembered
        # too (a new prospect's first update reads it three times)
        cache = _cache(session)
        row = cache.get(key)
        if row is None:
            found = (await session.execute(READ, {"fsm_key": key})).first()
            row = cache[key] = _Row.of(found)
        return row

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._row(key) as row:
            if row.state != value:
                row.state, row.dirty = value, True

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._row(key) as row:
            return row.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._row(key) as row:
            row.data, row.dirty = dict(data), True

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._row(key) as row:
            return dict(row.data)

    async def close(self) -> None:
        return None

    async def all_keys(self) -> list[str]:
        async with self.session_factory() as session:
            return list((await session.scalars(select(FSMRecord.key))).all())
