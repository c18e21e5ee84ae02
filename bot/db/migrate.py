"""Schema migrations with Alembic, configured in code (the scripts live in `bot/migrations/`).

`create_schema()` calls `upgrade()` at every start, so a production database - SQLite or PostgreSQL - is
always at the newest revision before the bot touches it:

* nothing to do (the usual case) costs one query;
* otherwise the migrations run in ONE transaction holding a lock, so replicas starting together migrate
  once: PostgreSQL takes a transaction-level advisory lock, SQLite a `BEGIN IMMEDIATE` write lock;
* on SQLite, foreign keys are switched off while migrating (a batch ALTER rebuilds the table, and dropping
  the old copy with foreign keys on would fire ON DELETE CASCADE on the child rows), and checked with
  `PRAGMA foreign_key_check` before the commit;
* a database made by the old `create_all` (tables, no `alembic_version`) is adopted: the baseline
  revision creates only the tables it lacks, then the later revisions run as usual.

Operators::

    python -m bot.db.migrate upgrade [REV]          # default head
    python -m bot.db.migrate downgrade REV          # e.g. -1, base
    python -m bot.db.migrate current | heads | history
    python -m bot.db.migrate stamp REV
    python -m bot.db.migrate revision -m "add x" [--autogenerate]

The URL is `--url`, else DATABASE_URL from the environment or `.env`, else the embedded default.
Autogenerate against a database at head (an empty SQLite file is at base: upgrade it first), then review
the file: revisions must run on both SQLite and PostgreSQL.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# every module that puts tables on `Base.metadata`
MODEL_MODULES = ("bot.db.models", "bot.analytics.models")
# pg_advisory_xact_lock key ("leadmig"): one migrating replica at a time
PG_LOCK_KEY = 0x6C6561646D6967
# a table every pre-migrations database has
LEGACY_MARKER_TABLE = "prospects"

_script_cache: dict[str, ScriptDirectory] = {}


def load_metadata() -> MetaData:
    """`Base.metadata` with every model module imported."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from bot.db.models import Base

    return Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate hook: application types are rendered as their plain SQLAlchemy type, so revision
    files never import the application (whose models change after the revision is written)."""
    from bot.db.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def script_directory() -> ScriptDirectory:
    key = str(MIGRATIONS_DIR)
    if key not in _script_cache:
        _script_cache[key] = ScriptDirectory.from_config(alembic_config())
    return _script_cache[key]


def current_head() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected exactly one migration head, found {sorted(heads)}")
    return heads[0]


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [script.revision for script in reversed(list(script_directory().walk_revisions()))]


def async_url(url: str) -> str:
    """Map a plain URL to the async driver the application uses."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg", "postgresql+psycopg2": "postgresql+asyncpg"}
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


# ------------------------------------------------------------------ running against a connection


@contextmanager
def _locked(connection: Connection) -> Iterator[Connection]:
    """The migration transaction: one writer at a time; on SQLite with foreign keys off."""
    sqlite = connection.dialect.name == "sqlite"
    if connection.in_transaction():
        connection.rollback()
    try:
        if sqlite:
            # outside a transaction, or the pragma is a no-op; pysqlite does not BEGIN for a PRAGMA
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # waits up to busy_timeout for other writers
        elif connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        try:
            yield connection
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"the migration left foreign key violations: {problems[:5]}")
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _heads_in(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def _is_legacy(connection: Connection) -> bool:
    """Tables made by the old `create_all`, but no alembic_version."""
    tables = set(inspect(connection).get_table_names())
    return LEGACY_MARKER_TABLE in tables and "alembic_version" not in tables


def _run_command(connection: Connection, action: Callable[[Config], None], **attributes: Any) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    cfg.attributes.update(attributes)
    action(cfg)


class NewerDatabaseError(RuntimeError):
    """The database was migrated by a newer version of the bot than this one."""


def _upgrade_sync(connection: Connection, revision: str) -> None:
    current = _heads_in(connection)
    if revision == "head" and current == set(script_directory().get_heads()):
        connection.rollback()
        return
    known = {script.revision for script in script_directory().walk_revisions()}
    if current - known:
        connection.rollback()
        raise NewerDatabaseError(
            f"the database is at revision {', '.join(sorted(current))}, unknown to this version of the bot "
            f"(newest here: {current_head()}); run the newer version, or downgrade with its "
            "`python -m bot.db.migrate downgrade` first")
    with _locked(connection):
        adopt = _is_legacy(connection)
        if adopt:
            log.warning("database made before migrations: adopting it (only missing tables are created)")
        _run_command(connection, lambda cfg: command.upgrade(cfg, revision), adopt_existing_tables=adopt)
        if adopt:
            _warn_about_differences(connection)


def _warn_about_differences(connection: Connection) -> None:
    """An adopted database keeps its tables as the old `create_all` made them: say what differs."""
    from alembic.autogenerate import compare_metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs = compare_metadata(context, load_metadata())
    if diffs:
        log.warning("the adopted database differs from the models in %s place(s): %s", len(diffs), diffs)


def _locked_sync(connection: Connection, action: Callable[[Config], None]) -> None:
    with _locked(connection):
        _run_command(connection, action)


def _current_sync(connection: Connection) -> str | None:
    heads = _heads_in(connection)
    connection.rollback()
    if len(heads) > 1:
        raise RuntimeError(f"database has several heads: {sorted(heads)}")
    return next(iter(heads), None)


async def _with_connection(engine_or_url: AsyncEngine | str, fn: Callable[..., Any], *args: Any) -> Any:
    from bot.db.engine import create_engine

    own = isinstance(engine_or_url, str)
    engine = create_engine(async_url(engine_or_url)) if isinstance(engine_or_url, str) else engine_or_url
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn, *args)
    finally:
        if own:
            await engine.dispose()


async def upgrade(engine_or_url: AsyncEngine | str, revision: str = "head") -> None:
    """Bring the database to `revision` (default the newest); a no-op when it is there already."""
    await _with_connection(engine_or_url, _upgrade_sync, revision)


async def downgrade(engine_or_url: AsyncEngine | str, revision: str) -> None:
    await _with_connection(engine_or_url, _locked_sync, lambda cfg: command.downgrade(cfg, revision))


async def stamp(engine_or_url: AsyncEngine | str, revision: str) -> None:
    await _with_connection(engine_or_url, _locked_sync, lambda cfg: command.stamp(cfg, revision))


async def current_revision(engine_or_url: AsyncEngine | str) -> str | None:
    return await _with_connection(engine_or_url, _current_sync)


async def autogenerate(engine_or_url: AsyncEngine | str, message: str, rev_id: str | None = None) -> None:
    def action(cfg: Config) -> None:
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id or next_rev_id())

    await _with_connection(engine_or_url, _locked_sync, action)


def next_rev_id() -> str:
    """Sequential ids (0001, 0002, ...): the order is visible in the file names."""
    numbers = [int(rev) for rev in revisions() if rev.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


# ------------------------------------------------------------------ CLI


def _default_url() -> str:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from bot.settings import Settings

    class _DatabaseSettings(BaseSettings):
        model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")
        database_url: str = Settings.model_fields["database_url"].default

    return _DatabaseSettings().database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.db.migrate", description="Database schema migrations.")
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else the embedded SQLite file)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("upgrade", help="migrate up (default: to head)").add_argument("revision", nargs="?",
                                                                                  default="head")
    sub.add_parser("downgrade", help="migrate down (e.g. -1, base)").add_argument("revision")
    sub.add_parser("stamp", help="record a revision without running it").add_argument("revision")
    sub.add_parser("current", help="the database's revision")
    sub.add_parser("heads", help="the newest revision")
    sub.add_parser("history", help="all revisions")
    rev = sub.add_parser("revision", help="write a new revision file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff the models against the database")
    rev.add_argument("--rev-id", help="default: the next number (0002, ...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = args.url or _default_url()

    if args.action == "upgrade":
        asyncio.run(upgrade(url, args.revision))
        print(f"at {asyncio.run(current_revision(url))}")
    elif args.action == "downgrade":
        asyncio.run(downgrade(url, args.revision))
        print(f"at {asyncio.run(current_revision(url))}")
    elif args.action == "stamp":
        asyncio.run(stamp(url, args.revision))
    elif args.action == "current":
        revision = asyncio.run(current_revision(url))
        head = current_head()
        print(f"{revision or 'base (empty)'}{' (head)' if revision == head else f' (head is {head})'}")
    elif args.action == "heads":
        print(current_head())
    elif args.action == "history":
        command.history(alembic_config(), verbose=False)
    elif args.action == "revision":
        if args.autogenerate:
            asyncio.run(autogenerate(url, args.message, args.rev_id))
        else:
            command.revision(alembic_config(), message=args.message, rev_id=args.rev_id or next_rev_id())
    return 0


if __name__ == "__main__":
    sys.exit(main())
