"""An update's last writes (its dedupe markers, its FSM row) wait until its commit (`bot.db.tail`): on
PostgreSQL they go as one statement, on SQLite one by one; either way all or none of them is written."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import FSMRecord, ProcessedMessage, ProcessedUpdate, utcnow
from bot.db.tail import defer
from bot.middlewares import MARK_MESSAGE, MARK_UPDATE
from bot.storage import SQLAlchemyStorage, current_session

KEY = StorageKey(bot_id=1, chat_id=8_123_456_789, user_id=8_123_456_789)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/t.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def database(url) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession], list[str]]]:
    engine = create_engine(url)
    await create_schema(engine)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: statements.append(" ".join(sql.split())))
    yield engine.dialect.name, create_session_factory(engine), statements
    await engine.dispose()


def mark(session: AsyncSession, update_id: int, message_id: int | None = None, replies: Any = None) -> None:
    now = utcnow()
    defer(session, MARK_UPDATE, {"update_id": update_id, "replies": replies,
                                 "chat_id": KEY.chat_id if replies else None, "processed_at": now})
    if message_id is not None:
        defer(session, MARK_MESSAGE, {"chat_id": KEY.chat_id, "message_id": message_id, "processed_at": now})


async def an_update(factory, storage, update_id: int, message_id: int | None, state: str, data: dict) -> None:
    async with factory() as session:
        token = current_session.set(session)
        try:
            await storage.set_state(KEY, state)
            await storage.set_data(KEY, data)
            mark(session, update_id, message_id, replies=[{"m": "sendMessage", "text": "Привіт 👋"}])
            await session.commit()
        finally:
            current_session.reset(token)


async def rows(factory) -> tuple[list[int], list[int], tuple[str | None, dict] | None]:
    async with factory() as session:
        updates = list((await session.scalars(select(ProcessedUpdate.update_id).order_by("update_id"))).all())
        messages = list((await session.scalars(select(ProcessedMessage.message_id).order_by("message_id"))).all())
        fsm = (await session.execute(select(FSMRecord.state, FSMRecord.data))).first()
    return updates, messages, (tuple(fsm) if fsm is not None else None)


async def test_the_markers_and_the_fsm_row_are_written_at_the_commit(database):
    kind, factory, statements = database
    storage = SQLAlchemyStorage(factory)
    await an_update(factory, storage, 1, 11, "Flow:name", {"step": "name"})  # a new FSM row: an INSERT
    written = [s for s in statements if not s.startswith("SELECT")]
    if kind == "postgresql":  # one statement: the markers as WITH clauses of the FSM row's INSERT
        assert len(written) == 1 and written[0].startswith("WITH w0 AS (INSERT INTO processed_updates")
        assert "w1 AS (INSERT INTO processed_messages" in written[0] and "INSERT INTO fsm_states" in written[0]
    else:
        assert [s.split()[:3] for s in written] == [["INSERT", "INTO", "processed_updates"],
                                                   ["INSERT", "INTO", "processed_messages"],
                                                   ["INSERT", "INTO", "fsm_states"]]
    statements.clear()
    await an_update(factory, storage, 2, None, "Flow:phone", {"step": "phone", "name": "Зоряна"})  # an UPDATE
    written = [s for s in statements if not s.startswith("SELECT")]
    assert len(written) == (1 if kind == "postgresql" else 2)
    assert written[-1].split()[0] == ("WITH" if kind == "postgresql" else "UPDATE")
    assert await rows(factory) == ([1, 2], [11], ("Flow:phone", {"step": "phone", "name": "Зоряна"}))
    async with factory() as session:
        stored = await session.get(ProcessedUpdate, 2)
        assert stored.replies == [{"m": "sendMessage", "text": "Привіт 👋"}] and stored.chat_id == KEY.chat_id
        assert stored.processed_at is not None


async def test_a_duplicate_marker_fails_the_commit_and_writes_none_of_the_rest(database):
    _, factory, _ = database
    storage = SQLAlchemyStorage(factory)
    await an_update(factory, storage, 1, 11, "Flow:name", {"step": "name"})
    with pytest.raises(IntegrityError):  # the same message again under another update id
        await an_update(factory, storage, 2, 11, "Flow:summary", {"step": "summary"})
    assert await rows(factory) == ([1], [11], ("Flow:name", {"step": "name"}))


async def test_a_rollback_drops_the_waiting_writes(database):
    _, factory, statements = database
    async with factory() as session:
        mark(session, 5, 55)
        await session.rollback()
        await session.commit()  # a later commit of the same session writes nothing of them
    assert not [s for s in statements if s.startswith(("INSERT", "WITH"))]
    assert await rows(factory) == ([], [], None)


async def test_a_single_waiting_write_goes_as_the_plain_statement(database):
    _, factory, statements = database
    async with factory() as session:
        mark(session, 7)
        await session.commit()
    assert [s.split()[:3] for s in statements if not s.startswith("SELECT")] == [
        ["INSERT", "INTO", "processed_updates"]]
    async with factory() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 1


async def test_the_waiting_writes_go_after_the_orm_changes_of_the_same_session(database):
    """As a `session.execute` would, after an autoflush: a write may refer to a row the ORM has not sent yet."""
    from bot.storage import UPDATE as FSM_UPDATE

    _, factory, _ = database
    async with factory() as session:
        session.add(FSMRecord(key="k", state="Flow:name", data={}))  # pending, not flushed
        defer(session, FSM_UPDATE, {"fsm_key": "k", "state": "Flow:phone", "data": {"a": 1}, "updated_at": utcnow()})
        await session.commit()
    assert (await rows(factory))[2] == ("Flow:phone", {"a": 1})


async def test_a_prospects_contact_fields_are_written_with_the_last_writes(database):
    """`write_prospect`: the object shows the values at once, the ORM does not flush them, and the row gets
    them (and a new `updated_at`) with the update's other last writes; a rollback keeps the old ones."""
    from bot.db.models import Prospect
    from bot.services.dialogue import write_prospect

    _, factory, statements = database
    async with factory() as session:
        pending = Prospect(tg_id=8_123_456_789, chat_id=8_123_456_789, first_name="Ann")
        session.add(pending)
        write_prospect(pending, name="Ann Lee")  # not inserted yet: the INSERT carries it
        await session.commit()
        before = pending.updated_at
    async with factory() as session:
        prospect = await session.get(Prospect, pending.id)
        assert prospect.name == "Ann Lee"
        statements.clear()
        write_prospect(prospect, phone="+380671234567", phone_verified=True)
        write_prospect(prospect, email="ann@example.com")
        assert (prospect.phone, prospect.phone_verified, prospect.email) == ("+380671234567", True, "ann@example.com")
        assert not session.dirty  # nothing for the ORM to flush
        mark(session, 9)
        await session.flush()
        assert not [s for s in statements if "prospects" in s and not s.startswith("SELECT")]
        await session.commit()
    assert [s for s in statements if "UPDATE prospects" in s]
    async with factory() as session:
        stored = await session.get(Prospect, pending.id)
        assert (stored.name, stored.phone, stored.phone_verified, stored.email) == (
            "Ann Lee", "+380671234567", True, "ann@example.com")
        assert stored.updated_at > before
        write_prospect(stored, email="other@example.com")
        await session.rollback()
    async with factory() as session:
        assert (await session.get(Prospect, pending.id)).email == "ann@example.com"


async def test_two_writes_of_one_table_never_share_a_statement(database):
    """In one statement PostgreSQL applies only one of two changes to the same row, so the second write of a
    table starts the next statement: both land, in order."""
    from bot.storage import UPDATE as FSM_UPDATE

    kind, factory, statements = database
    async with factory() as session:
        session.add(FSMRecord(key="k", state="Flow:name", data={}))
        await session.commit()
    statements.clear()
    async with factory() as session:
        mark(session, 1, 11)
        for state in ("Flow:phone", "Flow:email"):
            defer(session, FSM_UPDATE, {"fsm_key": "k", "state": state, "data": {"s": state}, "updated_at": utcnow()})
        await session.commit()
    written = [s for s in statements if not s.startswith("SELECT")]
    if kind == "postgresql":  # markers and the first FSM change together, the second FSM change alone
        assert len(written) == 2 and written[0].startswith("WITH") and written[1].startswith("UPDATE fsm_states")
    assert await rows(factory) == ([1], [11], ("Flow:email", {"s": "Flow:email"}))
