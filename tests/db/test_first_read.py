"""PostgreSQL: inside an update (`bot.db.first_read`) its first read goes without BEGIN, and last writes
that are one statement with nothing between that read and them go alone in autocommit. Whatever does
more is one transaction, all or nothing, as before; a handler's own session, a session outside an update
and a connection back in the pool are as usual."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncpg.transaction import Transaction
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.first_read import first_read
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


async def handled_before(factory, begins: list[int], update_id: int) -> None:
    """The update's marker, committed by an earlier delivery of it (its BEGIN not counted)."""
    async with factory() as session:
        session.add(ProcessedUpdate(update_id=update_id))
        await session.commit()
    begins.clear()


async def first_read_of(session) -> int:
    return await session.scalar(select(func.count()).select_from(ProcessedUpdate))


async def test_a_read_and_one_last_write_send_no_begin_and_no_commit(factory, begins):
    with first_read() as update:
        async with factory() as session:
            assert await first_read_of(session) == 0
            update.read_done()
            defer(session, MARK_UPDATE, marker(1))
            await session.commit()
    assert begins == []
    assert await markers(factory) == ([1], [])  # committed: another session sees it


async def test_a_statement_after_the_first_read_begins_the_transaction(factory, begins):
    with first_read() as update:
        async with factory() as session:
            await first_read_of(session)
            update.read_done()
            await session.scalar(select(ProcessedMessage.message_id))  # a read too: in the transaction
            assert begins == [1]
            defer(session, MARK_UPDATE, marker(1))
            await session.commit()
    assert begins == [1]
    assert await markers(factory) == ([1], [])


async def test_a_write_before_the_last_ones_is_undone_with_them(factory, begins):
    await handled_before(factory, begins, 7)
    with first_read() as update:
        async with factory() as session:
            await first_read_of(session)
            update.read_done()
            session.add(ProcessedMessage(chat_id=1, message_id=100))
            await session.flush()
            assert begins == [1]
            defer(session, MARK_UPDATE, marker(7))  # a duplicate marker: the update was handled before
            with pytest.raises(IntegrityError):
                await session.commit()
    assert begins == [1]
    assert await markers(factory) == ([7], [])  # the message's marker went with the failed transaction


async def test_last_writes_of_two_statements_are_one_transaction(factory, begins):
    await handled_before(factory, begins, 9)
    with first_read() as update:
        async with factory() as session:
            await first_read_of(session)
            update.read_done()
            defer(session, MARK_UPDATE, marker(8))  # two writes of one table: two statements
            defer(session, MARK_UPDATE, marker(9))  # the second fails
            with pytest.raises(IntegrityError):
                await session.commit()
    assert begins == [1]
    assert await markers(factory) == ([9], [])  # 8 was not left behind


async def test_a_session_that_begins_after_the_first_read_is_as_usual(pg_url, begins):
    engine = create_engine(pg_url, pool_size=2)
    await create_schema(engine)
    factory = create_session_factory(engine)
    begins.clear()  # the schema's own
    try:
        with first_read() as update:
            async with factory() as session:
                await first_read_of(session)
                update.read_done()
                async with factory() as other:  # a handler's own session, on the other connection
                    await first_read_of(other)
                    other.add(ProcessedUpdate(update_id=5))
                    await other.flush()
                    await other.rollback()
                assert begins == [1]
        assert await markers(factory) == ([], [])
    finally:
        await engine.dispose()


async def test_outside_an_update_a_transaction_begins_as_usual(factory, begins):
    async with factory() as session:
        await first_read_of(session)
        defer(session, MARK_UPDATE, marker(1))
        await session.commit()
    assert begins == [1]


async def test_a_connection_goes_back_to_the_pool_as_usual(factory, begins):
    with first_read() as update:
        async with factory() as session:  # the update skipped after its first read: nothing written or sent
            await first_read_of(session)
            update.read_done()
            await session.commit()
    with first_read():
        async with factory() as session:  # closed before its read was done: back to the pool all the same
            await first_read_of(session)
    assert begins == []
    async with factory() as session:  # the same connection, outside an update: a write can be rolled back
        session.add(ProcessedUpdate(update_id=3))
        await session.flush()
        await session.rollback()
    assert begins == [1]
    assert await markers(factory) == ([], [])
