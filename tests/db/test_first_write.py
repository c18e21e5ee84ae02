"""PostgreSQL: inside an update (`bot.db.first_write`) reads go without BEGIN, the transaction begins at the
first write, and last writes that are one statement with nothing written before them go alone in
autocommit. Whatever writes more is one transaction, all or nothing, as before; outside an update, and
once a connection is back in the pool, transactions are as usual."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncpg.transaction import Transaction
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.first_write import first_write
from bot.db.models import ProcessedMessage, ProcessedUpdate, utcnow
from bot.db.tail import defer
from bot.middlewares import MARK_UPDATE

pytestmark = pytest.mark.postgres


@pytest.fixture
async def factory(pg_url) -> AsyncIterator[object]:
    engine = create_engine(pg_url, pool_size=1)  # one connection: every session below reuses it
    await create_schema(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def begins(monkeypatch) -> list[int]:
    """Each BEGIN asyncpg sends (a transaction started), by the tests' own sessions."""
    started: list[int] = []
    real = Transaction.start

    async def start(self):  # type: ignore[no-untyped-def]
        started.append(1)
        return await real(self)

    monkeypatch.setattr(Transaction, "start", start)
    return started


def marker(update_id: int) -> dict[str, object]:
    return {"update_id": update_id, "replies": None, "chat_id": None, "processed_at": utcnow()}


async def markers(factory) -> tuple[list[int], list[int]]:
    async with factory() as session:
        updates = (await session.scalars(select(ProcessedUpdate.update_id).order_by(ProcessedUpdate.update_id))).all()
        messages = (await session.scalars(select(ProcessedMessage.message_id))).all()
    return list(updates), list(messages)


async def test_a_read_and_one_last_write_send_no_begin_and_no_commit(factory, begins):
    with first_write():
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
            defer(session, MARK_UPDATE, marker(1))
            await session.commit()
    assert begins == []
    assert await markers(factory) == ([1], [])  # committed: another session sees it


async def test_a_write_before_the_last_ones_begins_the_transaction_and_a_failure_undoes_it(factory, begins):
    async with factory() as session:
        session.add(ProcessedUpdate(update_id=7))
        await session.commit()
    begins.clear()
    with first_write():
        async with factory() as session:
            await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            session.add(ProcessedMessage(chat_id=1, message_id=100))
            await session.flush()  # the first write: BEGIN before it
            assert begins == [1]
            defer(session, MARK_UPDATE, marker(7))  # a duplicate marker: the update was handled before
            with pytest.raises(IntegrityError):
                await session.commit()
    assert begins == [1]
    assert await markers(factory) == ([7], [])  # the message's marker went with the failed transaction


async def test_last_writes_of_two_statements_are_one_transaction(factory, begins):
    async with factory() as session:
        session.add(ProcessedUpdate(update_id=9))
        await session.commit()
    begins.clear()
    with first_write():
        async with factory() as session:
            await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            defer(session, MARK_UPDATE, marker(8))  # two writes of one table: two statements
            defer(session, MARK_UPDATE, marker(9))  # the second fails
            with pytest.raises(IntegrityError):
                await session.commit()
    assert begins == [1]
    assert await markers(factory) == ([9], [])  # 8 was not left behind


async def test_outside_an_update_a_transaction_begins_as_usual(factory, begins):
    async with factory() as session:
        await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        defer(session, MARK_UPDATE, marker(1))
        await session.commit()
    assert begins == [1]


async def test_a_connection_goes_back_to_the_pool_as_usual(factory, begins):
    with first_write():
        async with factory() as session:  # reads in autocommit, then returns the pool's only connection
            await session.scalar(select(func.count()).select_from(ProcessedUpdate))
    with first_write():
        async with factory() as session:  # the update skipped after its read: nothing written, nothing sent
            await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            await session.commit()
    assert begins == []
    async with factory() as session:  # the same connection, outside an update: a write can be rolled back
        session.add(ProcessedUpdate(update_id=3))
        await session.flush()
        await session.rollback()
    assert begins == [1]
    assert await markers(factory) == ([], [])
