"""Persistent aiogram FSM storage on the project database.

Inside an update the storage joins the update's own session (set by the unit-of-work middleware
through `current_session`), so the conversation state commits atomically with the lead data it
describes: a crash before the commit loses neither, and a redelivered update replays cleanly.
Outside an update (tests, tools) it opens and commits a short session of its own.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import FSMRecord

FSM_CACHE = "fsm_records"
current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)


class SQLAlchemyStorage(BaseStorage):
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], key_builder: KeyBuilder | None = None
    ) -> None:
        self.session_factory = session_factory
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[AsyncSession, bool]]:
        session = current_session.get()
        if session is not None:
            yield session, False
            return
        async with self.session_factory() as own, own.begin():
            yield own, True

    async def _record(self, session: AsyncSession, key: str) -> FSMRecord | None:
        # aiogram reads the state and data several times per update; the session only keeps loaded
        # rows weakly, so without this each read is a query; a missing row is remembered too (a new
        # prospect's first update reads it three times)
        cache = session.info.setdefault(FSM_CACHE, {})
        if key in cache:
            return cache[key]
        record = cache[key] = await session.get(FSMRecord, key)
        return record

    @staticmethod
    def _added(session: AsyncSession, record: FSMRecord) -> None:
        session.add(record)
        session.info.setdefault(FSM_CACHE, {})[record.key] = record

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._session() as (session, _):
            record = await self._record(session, self.key_builder.build(key))
            if record is None:
                if value is None:
                    return
                self._added(session, FSMRecord(key=self.key_builder.build(key), state=value, data={}))
            else:
                record.state = value
            # no flush: the commit (or an autoflush before the next query) writes state and data as one UPDATE

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (session, _):
            record = await self._record(session, self.key_builder.build(key))
            return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session() as (session, _):
            record = await self._record(session, self.key_builder.build(key))
            if record is None:
                if not data:
                    return
                self._added(session, FSMRecord(key=self.key_builder.build(key), state=None, data=dict(data)))
            else:
                record.data = dict(data)  # a new object so the JSON column is marked dirty

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (session, _):
            record = await self._record(session, self.key_builder.build(key))
            return dict(record.data) if record and record.data else {}

    async def close(self) -> None:
        return None

    async def all_keys(self) -> list[str]:
        async with self.session_factory() as session:
            return list((await session.scalars(select(FSMRecord.key))).all())
