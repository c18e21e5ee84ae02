"""Fixtures for the analytics tests: a temp SQLite database with the schema (summary tables
included) and helpers that write known lead histories directly."""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import bot.analytics  # noqa: F401 - registers the summary tables before create_schema
from bot.analytics.models import track_stage_change
from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import DialogueRun, Lead, StageReached
from funnel import DEFAULT_FUNNEL_PATH, load_funnel


@pytest.fixture(scope="session")
def funnel():
    return load_funnel(DEFAULT_FUNNEL_PATH)


@dataclass
class DB:
    engine: Any
    factory: Any

    def session(self) -> Any:
        return self.factory()


PG_URL = os.environ.get("LEADBOT_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def postgres_reachable() -> bool:
    url = make_url(PG_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request, tmp_path) -> AsyncIterator[DB]:
    """The same tests on SQLite and, when it is reachable, on PostgreSQL (a fresh database each)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/analytics.db")
        await create_schema(engine)
        yield DB(engine, create_session_factory(engine))
        await engine.dispose()
        return
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable at " + make_url(PG_URL).render_as_string(hide_password=True))
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"leadbot_analytics_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    try:
        await create_schema(engine)
        yield DB(engine, create_session_factory(engine))
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def add_lead(
    session: Any, created: datetime, path: Sequence[tuple[str, float]] | Sequence[str], *, source: str = "direct",
    reason: str | None = None, amount: Decimal | str | None = None, manager: tuple[int, str] | None = None,
    handed: datetime | None = None, assigned: datetime | None = None, first_move: datetime | None = None,
    track: bool = True, **fields: Any,
) -> Lead:
    """A lead created at `created` that went through `path`: [(stage, hours after the previous), ...]
    (the first stage is entered at `created`; a bare stage name means one hour later)."""
    steps = [(p, 1.0) if isinstance(p, str) else p for p in path]
    final = steps[-1][0]
    outcome = "won" if final == "won" else "lost" if final == "lost" else None
    lead = Lead(
        source=source, stage=final, created_at=created, outcome=outcome, lost_reason=reason if outcome == "lost"
        else None, amount=Decimal(amount) if amount is not None else None,
        manager_id=manager[0] if manager else None, manager_name=manager[1] if manager else None,
        handed_off_at=handed, assigned_at=assigned, first_move_at=first_move, **fields,
    )
    session.add(lead)
    await session.flush()
    at = created
    rows: dict[str, StageReached] = {}
    previous: StageReached | None = None
    for index, (stage, hours) in enumerate(steps):
        if index:
            at = at + timedelta(hours=hours)
        left = None
        if previous is not None and previous.left_at is None:
            previous.left_at = at
            left = previous
        entered = None
        if stage not in rows:
            entered = rows[stage] = StageReached(lead_id=lead.id, stage=stage, reached_at=at,
                                                 lead_created_at=created, source=source)
            session.add(entered)
        previous = rows[stage]
        if track:
            await track_stage_change(session, lead, entered=entered, left=left)
    lead.stage_changed_at = at
    return lead


async def add_run(session: Any, started: datetime, max_index: int, last_step: str | None, *,
                  completed: bool = False, declined: bool = False, source: str = "direct") -> DialogueRun:
    run = DialogueRun(source=source, started_at=started, max_step_index=max_index, last_step=last_step,
                      completed_at=started + timedelta(minutes=5) if completed else None, declined=declined)
    session.add(run)
    return run


# ---------------------------------------------------------------------------- the app against the emulator

TOKEN = "123456:" + "A" * 35
ADMIN = 900
STAFF_CHAT = -100777


def person(uid: int, first_name: str = "Alice", language_code: str = "en") -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": first_name, "language_code": language_code}


@pytest.fixture
def admin_settings(tmp_path, emulator):
    from bot.settings import Settings

    return Settings(
        _env_file=None, bot_token=TOKEN, database_url=f"sqlite+aiosqlite:///{tmp_path}/flow.db",
        staff_chat_id=STAFF_CHAT, admin_ids=[ADMIN, ADMIN + 1], telegram_api_url=emulator.base_url,
        timezone="Europe/Kyiv", digest="daily", digest_hour=9,
    )


@pytest.fixture
async def app(admin_settings, emulator) -> AsyncIterator[Any]:
    from bot.app import create_app

    emulator.create_chat(STAFF_CHAT, type="supergroup", title="Staff")
    application = await create_app(admin_settings, with_delivery=False)
    yield application
    await application.close()


class Feeder:
    """A user writes through the emulator; the updates are fetched with getUpdates and fed to the
    dispatcher, as polling would; what the bot sent is read back from the emulator."""

    def __init__(self, app: Any, emulator: Any) -> None:
        self.app, self.emulator = app, emulator
        self.offset: int | None = None

    async def message(self, user: dict[str, Any], text: str) -> list[dict[str, Any]]:
        """Send `text` as `user` in private chat; returns the bot messages it caused."""
        before = len(self.bot_messages(user["id"]))
        self.emulator.inject_message(user, text)
        while updates := await self.app.bot.get_updates(offset=self.offset, timeout=0):
            for update in updates:
                await self.app.dp.feed_update(self.app.bot, update)
                self.offset = update.update_id + 1
        return self.bot_messages(user["id"])[before:]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.emulator.messages(chat_id) if m.get("from", {}).get("is_bot")]

    def file(self, file_id: str) -> bytes:
        return self.emulator.file(file_id).data


@pytest.fixture
def feed(app, emulator) -> Feeder:
    return Feeder(app, emulator)
