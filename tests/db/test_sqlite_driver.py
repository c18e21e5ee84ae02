"""bot/db/sqlite_driver.py: one thread hop per statement, none for what may run in the event loop's thread,
and the same answers as SQLAlchemy's own aiosqlite adapter - rows, rowcount, lastrowid, RETURNING,
executemany, streaming, errors, rollbacks."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine
from bot.db.sqlite_driver import OneHopCursor, in_place


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


@pytest.mark.parametrize("placed", [False, True], ids=["thread", "in place"])
async def test_the_one_hop_driver_answers_as_the_stock_adapter(tmp_path: Path, placed: bool) -> None:
    ours = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ours.db")
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/stock.db")
    try:
        async with ours.connect() as conn:
            raw = await conn.get_raw_connection()
            assert raw.dbapi_connection.cursor().__class__ is OneHopCursor  # really ours
        expected = await _script(stock)
        if placed:
            async with in_place():
                assert await _script(ours) == expected
        else:
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


def _thread_engine(path: Path) -> Any:
    """An engine whose SQL can ask in which thread it runs: SELECT thread_id()."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _thread_id(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection._connection._conn.create_function("thread_id", 0, threading.get_ident)

    return engine


async def test_in_an_update_short_statements_run_in_the_loop_thread(tmp_path: Path) -> None:
    engine = _thread_engine(tmp_path / "place.db")
    loop_thread = threading.get_ident()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, thread INTEGER)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT thread_id()"))).scalar() != loop_thread  # not in an update
            await conn.rollback()
            async with in_place():
                assert (await conn.execute(text("SELECT thread_id()"))).scalar() == loop_thread
                # the write that begins the transaction takes the lock with no busy wait (no one holds it
                # here), the later ones hold it: all in place
                await conn.execute(text("INSERT INTO t (thread) VALUES (thread_id())"))
                await conn.execute(text("INSERT INTO t (thread) VALUES (thread_id())"))
                await conn.execute(text("UPDATE t SET thread = thread WHERE id = 1"))
                rows = (await conn.execute(text("SELECT thread FROM t ORDER BY id"))).scalars().all()
                async with in_place(False):  # e.g. /forget, whose writes scan tables
                    await conn.execute(text("INSERT INTO t (thread) VALUES (thread_id())"))
                    assert (await conn.execute(text("SELECT thread_id()"))).scalar() != loop_thread
                assert (await conn.execute(text("SELECT thread_id()"))).scalar() == loop_thread
                await conn.commit()
            last = (await conn.execute(text("SELECT thread FROM t ORDER BY id DESC LIMIT 1"))).scalar()
            await conn.rollback()
            async with in_place():  # a deferred BEGIN opens a transaction but takes no lock: the write takes it
                await conn.exec_driver_sql("BEGIN")
                await conn.execute(text("INSERT INTO t (thread) VALUES (thread_id())"))
                await conn.execute(text("INSERT INTO t (thread) VALUES (thread_id())"))
                await conn.commit()
            begun = (await conn.execute(text("SELECT thread FROM t ORDER BY id DESC LIMIT 2"))).scalars().all()
            # the busy wait is back for whatever comes next on the connection
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert rows == [loop_thread, loop_thread] and last != loop_thread
        assert begun == [loop_thread, loop_thread]
        assert timeout == SQLITE_BUSY_TIMEOUT_MS
    finally:
        await engine.dispose()


async def test_a_long_select_is_interrupted_and_run_again_in_the_thread(tmp_path: Path) -> None:
    engine = _thread_engine(tmp_path / "long.db")
    loop_thread = threading.get_ident()
    count = text("SELECT (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)"
                 " SELECT count(*) FROM c), thread_id()")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
        async with engine.connect() as conn, in_place():
            await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
            rows, thread = (await conn.execute(count)).one()
            assert (await conn.execute(text("SELECT thread_id()"))).scalar() == loop_thread
            await conn.execute(text("INSERT INTO t (n) VALUES (2)"))
            await conn.commit()
        assert rows == 200_000 and thread != loop_thread
        async with engine.connect() as conn:  # the interrupted read left the transaction as it was
            assert (await conn.execute(text("SELECT group_concat(n) FROM t"))).scalar() == "1,2"
    finally:
        await engine.dispose()


async def test_a_write_waiting_for_another_writer_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = _thread_engine(path)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None)  # another process, say, holding the write lock
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async def write() -> None:
            async with engine.begin() as conn, in_place():
                # refused at once in the loop's thread (the lock is taken), so it waits in aiosqlite's
                await conn.execute(text("INSERT INTO t (n) VALUES (thread_id())"))
                await conn.execute(text("INSERT INTO t (n) VALUES (thread_id())"))  # holds it now: in place

        clock = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        assert not writing.done() and ticks >= 10  # waiting for the lock, in the thread
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writing, 10)
        clock.cancel()
        async with engine.connect() as conn:
            threads = (await conn.execute(text("SELECT n FROM t ORDER BY id"))).scalars().all()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        loop_thread = threading.get_ident()
        assert len(threads) == 2 and threads[0] != loop_thread and threads[1] == loop_thread  # written once
        assert timeout == SQLITE_BUSY_TIMEOUT_MS
    finally:
        await engine.dispose()


def _record_trips(monkeypatch: Any) -> list[str]:
    """The names of the functions sent into aiosqlite's thread from now on."""
    import aiosqlite

    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def recorded(self: Any, fn: Any, *args: Any, **kw: Any) -> Any:
        trips.append(getattr(fn, "__name__", "?"))
        return await real(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", recorded)
    return trips


async def test_an_update_commits_in_place_and_every_nth_commit_checkpoints_in_the_thread(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A COMMIT in WAL mode appends to the WAL: in place. SQLite's own checkpoint (an fsync, inside a
    COMMIT) is off; the driver's runs in the thread after every CHECKPOINT_EVERY-th commit, so the WAL
    stays small."""
    from bot.db import sqlite_driver

    monkeypatch.setattr(sqlite_driver, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, blob BLOB)"))
            assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
        trips = _record_trips(monkeypatch)
        async with engine.connect() as conn:
            for n in range(1, 201):  # 200 updates, a few pages each
                async with in_place():
                    await conn.execute(text("INSERT INTO t (blob) VALUES (randomblob(6000))"))
                    await conn.commit()
                if n == 19:
                    assert trips == []  # a whole transaction with no trip to the thread
            await conn.commit()
        assert trips.count("_checkpoint") == 10 and trips.count("commit") == 10
        wal_pages = path.with_name("wal.db-wal").stat().st_size / 4096
        assert wal_pages < 150  # 20 commits' worth, not 200 (about 400 pages: 3 or so each)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 200
    finally:
        monkeypatch.undo()
        await engine.dispose()


async def test_without_wal_a_commit_stays_in_the_thread(monkeypatch: Any) -> None:
    """Outside WAL mode (an in-memory database here) a COMMIT may wait for readers: never in place."""
    engine = create_engine("sqlite+aiosqlite://")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await conn.commit()
            trips = _record_trips(monkeypatch)
            async with in_place():
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
                await conn.commit()
        assert trips == ["commit"]
    finally:
        monkeypatch.undo()
        await engine.dispose()


async def test_an_update_session_on_the_one_hop_engine_closes_without_a_task_of_its_own(tmp_path: Path) -> None:
    """SQLAlchemy closes an `async with` session in a shielded task of its own; on the one-hop engine the
    close cannot suspend, so the unit of work awaits it in place, and the connection is back in the pool."""
    from bot.db.engine import create_session_factory
    from bot.db.sqlite_driver import closes_in_place
    from bot.middlewares import _Closing

    ours = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ours.db")
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/stock.db")
    assert closes_in_place(ours) and not closes_in_place(stock)
    loop = asyncio.get_running_loop()
    created: list[Any] = []

    def factory(loop: Any, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kw)

    try:
        for engine, close_in_place, tasks in ((ours, True, 0), (stock, False, 1)):
            created.clear()
            loop.set_task_factory(factory)
            try:
                async with _Closing(create_session_factory(engine)(), close_in_place) as session, in_place():
                    await session.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)"))
                    await session.execute(text("INSERT INTO t DEFAULT VALUES"))
                    await session.commit()
            finally:
                loop.set_task_factory(None)
            assert len(created) == tasks and engine.pool.checkedout() == 0
    finally:
        await ours.dispose()
        await stock.dispose()
