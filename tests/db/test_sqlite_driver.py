"""bot/db/sqlite_driver.py: one thread hop per statement, and the same answers as SQLAlchemy's own aiosqlite
adapter - rows, rowcount, lastrowid, RETURNING, executemany, streaming, errors, rollbacks."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.engine import create_engine
from bot.db.sqlite_driver import OneHopCursor


async def _script(engine: Any) -> list[Any]:
    out: list[Any] = []
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
        result = await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        out.append(("insert", result.rowcount, result.lastrowid))
        result = await conn.execute(text("INSERT INTO t (name, n) VALUES (:name, :n)"),
                                    [{"name": f"m{i}", "n": i} for i in range(5)])
        out.append(("executemany", result.rowcount))
        result = await conn.execute(text("UPDATE t SET n = n + 10 WHERE n < 3"))
        out.append(("update", result.rowcount))
        result = await conn.execute(text("UPDATE t SET n = 0 WHERE name = 'nobody'"))
        out.append(("update none", result.rowcount))
        result = await conn.execute(text("INSERT INTO t (name, n) VALUES ('r', 7) RETURNING id, n"))
        out.append(("returning", [tuple(r) for r in result]))
        result = await conn.execute(text("SELECT name, n FROM t ORDER BY id"))
        out.append(("keys", list(result.keys())))
        out.append(("first", tuple(result.first() or ())))
        result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
        out.append(("many", [tuple(r) for r in result.fetchmany(2)], [tuple(r) for r in result.fetchall()]))
        result = await conn.execute(text("SELECT count(*) FROM t WHERE n > 100"))
        out.append(("scalar", result.scalar()))
        stream = await conn.stream(text("SELECT id FROM t ORDER BY id"))
        out.append(("stream", [row[0] async for row in stream]))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('b', 2)"))
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 3)"))  # a duplicate name
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT count(*) FROM t WHERE name = 'b'"))
        out.append(("rolled back", result.scalar()))
    return out


async def test_the_one_hop_driver_answers_as_the_stock_adapter(tmp_path: Path) -> None:
    ours = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ours.db")
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/stock.db")
    try:
        async with ours.connect() as conn:
            raw = await conn.get_raw_connection()
            assert raw.dbapi_connection.cursor().__class__ is OneHopCursor  # really ours
        expected = await _script(stock)
        assert await _script(ours) == expected
        assert ("update", 4) in expected and ("rolled back", 0) in expected  # the script checks something
    finally:
        await ours.dispose()
        await stock.dispose()


async def test_a_statement_is_one_call_into_the_sqlite_thread(tmp_path: Path, monkeypatch: Any) -> None:
    import aiosqlite

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/hops.db")
    calls = 0
    real = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(self, fn, *args, **kw)

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
            calls = 0
            for _ in range(5):
                assert (await conn.execute(text("SELECT 1 + 1"))).scalar() == 2
            assert calls == 5  # the stock adapter: cursor, execute, fetchall, close = 20
    finally:
        monkeypatch.undo()
        await engine.dispose()
