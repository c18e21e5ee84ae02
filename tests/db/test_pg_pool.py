"""The PostgreSQL pool (`bot.db.engine`): a fixed set of connections, kept open under any burst, and a pooled
connection pinged before use only after sitting idle (`ping_when_idle`): no round trip of its own under load,
and a connection the server dropped meanwhile is replaced unseen."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.db.engine as engine_module
from bot.db.engine import create_engine
from bot.middlewares import is_transient
from tests.db.conftest import PG_ADMIN_URL, _dsn

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_engine(pg_url)
    yield created
    await created.dispose()


def count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", do_ping)
    return pings


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def terminate(pid: int) -> None:
    import asyncpg

    admin = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):  # until the server has really let it go
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await admin.execute("SELECT pg_sleep(0.02)")
    finally:
        await admin.close()


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(engine, monkeypatch):
    pings = count_pings(engine, monkeypatch)
    first = await backend_pid(engine)
    for _ in range(5):
        assert await backend_pid(engine) == first  # the same pooled connection each time
    assert pings == []


async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(engine, monkeypatch):
    pings = count_pings(engine, monkeypatch)
    dropped = await backend_pid(engine)
    await terminate(dropped)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # every connection has now been idle long enough
    fresh = await backend_pid(engine)  # no error: the ping found it dead and the pool connected anew
    assert fresh != dropped
    assert pings, "the idle connection was not pinged"


async def test_a_connection_dropped_while_in_use_fails_as_transient_and_the_pool_recovers(engine, monkeypatch):
    dropped = await backend_pid(engine)
    await terminate(dropped)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)  # not idle: used without a ping
    with pytest.raises(DBAPIError) as failure:
        await backend_pid(engine)
    assert is_transient(failure.value)  # so the unit of work has the update handled again, not dead-lettered
    assert await backend_pid(engine) != dropped


async def test_a_burst_waits_for_the_pool_and_opens_no_connection_beyond_it(pg_url):
    engine = create_engine(pg_url, pool_size=3)
    opened: list[int] = []
    closed: list[int] = []
    event.listen(engine.sync_engine, "connect", lambda *args: opened.append(1))
    event.listen(engine.sync_engine, "close", lambda *args: closed.append(1))
    busiest = 0
    inside = 0

    async def transaction(n: int) -> int:
        nonlocal busiest, inside
        async with engine.begin() as connection:
            inside += 1
            busiest = max(busiest, inside)
            value = (await connection.execute(text("SELECT CAST(:n AS integer) FROM pg_sleep(0.005)"), {"n": n})).scalar_one()
            inside -= 1
            return value

    try:
        for _ in range(3):  # bursts, as under a campaign: 40 updates at once, each wanting a connection
            assert await asyncio.gather(*(transaction(n) for n in range(40))) == list(range(40))
        assert busiest == 3
        assert len(opened) == 3 and closed == []  # none opened beyond the pool, none closed and opened again
    finally:
        await engine.dispose()
