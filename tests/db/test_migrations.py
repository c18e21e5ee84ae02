"""Alembic migrations: the stairway (every revision up, down, up again), the migrated schema equals
`Base.metadata`, start-up migration (`create_schema`) on new, current, legacy and concurrently started
databases, SQLite's foreign keys during a table-rebuilding migration, and the operator CLI.
SQLite always; PostgreSQL (marker `postgres`) when reachable."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import migrate
from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import Base, Lead, LeadEvent, Prospect
from tests.conftest import ROOT
from tests.db.conftest import prospect_fields


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
    return request.getfixturevalue("pg_url")


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def _diffs(engine: AsyncEngine) -> list[Any]:
    metadata = migrate.load_metadata()

    def compare(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


def _app_tables() -> set[str]:
    return set(migrate.load_metadata().tables)


def test_there_is_one_head_and_revisions_are_sequential():
    revisions = migrate.revisions()
    assert revisions and revisions[0] == "0001"
    assert migrate.current_head() == revisions[-1]
    assert revisions == [f"{n:04d}" for n in range(1, len(revisions) + 1)]


def test_the_analytics_tables_are_part_of_the_metadata():
    assert {"analytics_reached_daily", "analytics_stay_daily"} <= set(migrate.load_metadata().tables)


async def test_stairway_every_revision_goes_up_down_and_up_again(db_url):
    engine = create_engine(db_url)
    try:
        previous = "base"
        for revision in migrate.revisions():
            await migrate.upgrade(engine, revision)
            assert await migrate.current_revision(engine) == revision
            await migrate.downgrade(engine, "-1")
            assert await migrate.current_revision(engine) == (None if previous == "base" else previous)
            await migrate.upgrade(engine, revision)
            assert await migrate.current_revision(engine) == revision
            previous = revision
        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        assert await _tables(engine) <= {"alembic_version"}  # nothing of ours is left behind
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.current_head()
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_the_models(db_url):
    engine = create_engine(db_url)
    try:
        await migrate.upgrade(engine)
        assert await _tables(engine) == _app_tables() | {"alembic_version"}
        assert await _diffs(engine) == []
    finally:
        await engine.dispose()


async def test_create_schema_migrates_a_new_database_quickly_and_then_is_a_noop(db_url):
    engine = create_engine(db_url)
    try:
        began = time.perf_counter()
        await create_schema(engine)
        fresh = time.perf_counter() - began
        began = time.perf_counter()
        await create_schema(engine)
        again = time.perf_counter() - began
        assert await migrate.current_revision(engine) == migrate.current_head()
        # SQLite: ~40 ms warm; PostgreSQL: ~0.2-0.6 s (DDL round trips), a loaded CI runner gets slack
        limit = 1.0 if engine.dialect.name == "sqlite" else 5.0
        assert fresh < limit, f"a fresh database took {fresh:.2f}s to migrate"
        assert again < 0.25, f"an up-to-date database took {again:.2f}s"
    finally:
        await engine.dispose()


async def test_a_database_made_by_the_old_create_all_is_adopted_and_keeps_its_rows(db_url, caplog):
    """Before migrations, `create_schema` was `create_all`: such a database (here without the analytics
    tables, as the first builds made it) gets the missing tables and `alembic_version`, rows stay."""
    engine = create_engine(db_url)
    try:
        old_tables = [t for name, t in Base.metadata.tables.items() if not name.startswith("analytics_")]
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: Base.metadata.create_all(c, tables=old_tables))
        async with create_session_factory(engine)() as session:
            session.add(Prospect(**prospect_fields()))
            await session.commit()
        with caplog.at_level("WARNING", logger="bot.db.migrate"):
            await create_schema(engine)
        assert "adopting" in caplog.text and "differs" not in caplog.text
        assert await migrate.current_revision(engine) == migrate.current_head()
        assert await _diffs(engine) == []
        async with create_session_factory(engine)() as session:
            assert (await session.scalar(select(Prospect.tg_id))) == 8_123_456_789
    finally:
        await engine.dispose()


async def test_a_database_from_a_newer_bot_is_refused_with_a_clear_message(db_url):
    engine = create_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(migrate.NewerDatabaseError, match="9999"):
            await create_schema(engine)
    finally:
        await engine.dispose()


async def test_replicas_starting_together_migrate_once(db_url):
    engines = [create_engine(db_url) for _ in range(4)]
    try:
        # without the lock they collide (SQLite: "database is locked"; PostgreSQL: they wait on each other)
        await asyncio.wait_for(asyncio.gather(*(create_schema(engine) for engine in engines)), 60)
        for engine in engines:
            assert await migrate.current_revision(engine) == migrate.current_head()
        async with engines[0].connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [v for (v,) in versions] == [migrate.current_head()]
        assert await _diffs(engines[0]) == []
    finally:
        for engine in engines:
            await engine.dispose()


BATCH_REVISION = '''
"""test only: rebuild `leads` the way a batch ALTER on SQLite does"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("leads", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("test_note", sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table("leads", recreate="always") as batch_op:
        batch_op.drop_column("test_note")
'''


async def test_a_table_rebuilding_migration_keeps_child_rows_on_sqlite(tmp_path, monkeypatch):
    """Rebuilding `leads` drops the old table; with foreign keys on, SQLite would run ON DELETE CASCADE
    and silently delete every lead_events row. Migrations run with foreign keys off."""
    extra = tmp_path / "extra_versions"
    extra.mkdir()
    (extra / "9001_rebuild_leads.py").write_text(textwrap.dedent(BATCH_REVISION.format(head=migrate.current_head())))
    real_config = migrate.alembic_config

    def config_with_extra(url: str | None = None) -> Config:
        cfg = real_config(url)
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations", f"{migrate.MIGRATIONS_DIR / 'versions'}:{extra}")
        return cfg

    monkeypatch.setattr(migrate, "alembic_config", config_with_extra)
    monkeypatch.setattr(migrate, "_script_cache", {})
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/fk.db")
    try:
        await migrate.upgrade(engine, migrate.revisions()[-2])
        async with create_session_factory(engine)() as session:
            prospect = Prospect(**prospect_fields())
            session.add(prospect)
            await session.flush()
            lead = Lead(prospect_id=prospect.id, stage="new", answers={}, signals=[], breakdown=[])
            session.add(lead)
            await session.flush()
            session.add(LeadEvent(lead_id=lead.id, kind="created", data={}, created_at=datetime.now(UTC)))
            await session.commit()
        await migrate.upgrade(engine, "9001")
        await migrate.downgrade(engine, "-1")
        async with engine.connect() as connection:
            events = (await connection.execute(text("SELECT count(*) FROM lead_events"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert events == 1
        assert foreign_keys == 1  # switched back on for the application's connections
    finally:
        await engine.dispose()


def test_cli_upgrade_current_and_downgrade(tmp_path):
    url = f"sqlite:///{tmp_path}/cli/leadbot.db"  # a plain URL: the CLI picks the async driver

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "bot.db.migrate", "--url", url, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    head = migrate.current_head()
    assert f"at {head}" in run("upgrade")  # creates the directory and the file
    assert Path(tmp_path / "cli" / "leadbot.db").exists()
    assert f"{head} (head)" in run("current")
    assert "at None" in run("downgrade", "base")
