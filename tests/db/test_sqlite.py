"""The embedded default: SQLite needs no set-up - the data directory is created, the database is migrated,
WAL mode and a busy timeout let the bot, the delivery worker and housekeeping share the file - and the
compare-and-set services hold under concurrent transactions there too."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.db import migrate
from bot.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, create_schema, create_session_factory
from funnel import load_funnel
from funnel.model import DEFAULT_FUNNEL_PATH
from tests.db.conftest import assert_cas_races


async def _pragmas(engine) -> dict[str, object]:
    async with engine.connect() as connection:
        return {name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")}


async def test_default_url_creates_the_data_directory_and_a_wal_database(tmp_path, monkeypatch):
    from bot.settings import Settings

    monkeypatch.chdir(tmp_path)
    url = Settings.model_fields["database_url"].default
    assert url == "sqlite+aiosqlite:///data/leadbot.db"
    assert not (tmp_path / "data").exists()
    engine = create_engine(url)
    try:
        await create_schema(engine)
        assert (tmp_path / "data" / "leadbot.db").is_file()
        assert await _pragmas(engine) == {"journal_mode": "wal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                                          "foreign_keys": 1, "synchronous": 1}  # 1 = NORMAL
        assert await migrate.current_revision(engine) == migrate.current_head()
    finally:
        await engine.dispose()


async def test_nested_new_directories_and_every_pooled_connection_get_the_pragmas(sqlite_url):
    engine = create_engine(sqlite_url)
    try:
        await create_schema(engine)
        assert Path(sqlite_url.split("///", 1)[1]).is_file()
        async with engine.connect() as one, engine.connect() as two:  # two pooled connections
            for connection in (one, two):
                assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
                assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one() == 10_000
                assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_in_memory_database_still_works(tmp_path):
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        await create_schema(engine)
        assert await migrate.current_revision(engine) == migrate.current_head()
    finally:
        await engine.dispose()
    assert list(tmp_path.iterdir()) == []


async def test_compare_and_set_races_on_sqlite(sqlite_url):
    """SQLite has one writer: the second UPDATE waits (busy timeout) for the first commit, then finds the
    lead already moved/taken."""
    engine = create_engine(sqlite_url)
    try:
        await create_schema(engine)
        await assert_cas_races(create_session_factory(engine), load_funnel(DEFAULT_FUNNEL_PATH))
    finally:
        await engine.dispose()
