"""Fixtures for the database/Redis tests.

* `pg_url`    - an empty PostgreSQL database (asyncpg URL). One database `leadbot_test_<random>` is created
                per test run from the `test` database and dropped at the end; every test gets it with an
                empty `public` schema. Skips when PostgreSQL is unreachable (set LEADBOT_REQUIRE_SERVICES=1,
                as CI may, to fail instead).
* `redis_url` - Redis database 15 (flushed before and after each test); skips when unreachable.
* `sqlite_url` - a brand-new SQLite file in a directory that does not exist yet.

Server addresses: TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and
TEST_REDIS_URL (default redis://127.0.0.1:6379/15).
"""
from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE = os.environ.get("LEADBOT_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc}); start it to run these tests"
    if REQUIRE:
        pytest.fail(message)
    pytest.skip(message)


def _dsn(url: str, database: str | None = None) -> str:
    """A plain libpq DSN for asyncpg (no SQLAlchemy driver suffix)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _pg_admin(sql: str, database: str | None = None) -> None:
    import asyncpg

    connection = await asyncpg.connect(_dsn(PG_ADMIN_URL, database), timeout=5)
    try:
        await connection.execute(sql)  # autocommit: CREATE/DROP DATABASE cannot run in a transaction
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Create `leadbot_test_<random>` for this test run; drop it afterwards."""
    name = f"leadbot_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, ImportError) as exc:
        _unavailable(f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()}", exc)
    except Exception as exc:  # noqa: BLE001 - asyncpg's own errors (auth, missing db) also mean "not usable"
        _unavailable(f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()}", exc)
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    """The run's database with an empty `public` schema, as a SQLAlchemy asyncpg URL."""
    await _pg_admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public;", pg_database)
    parsed = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=pg_database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        await client.aclose()
        _unavailable(f"Redis at {REDIS_URL}", exc)
    await client.flushdb()
    try:
        yield REDIS_URL
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/brand-new/data/leadbot.db"


# ------------------------------------------------------------------ shared helpers


def prospect_fields(tg_id: int = 8_123_456_789, **extra: Any) -> dict[str, Any]:
    """A prospect with a Telegram id beyond 32 bits (real ids are)."""
    fields: dict[str, Any] = {"tg_id": tg_id, "chat_id": tg_id, "username": "ann", "first_name": "Ann",
                              "name": "Ann Lee", "phone": "+380671234567", "phone_verified": True,
                              "email": "ann@example.com", "locale": "en"}
    fields.update(extra)
    return fields


QUALIFIED_ANSWERS = {"name": "Ann Lee", "need": "product", "budget": "gt_20k", "timeline": "asap",
                     "customer_type": "b2b", "company_size": "51_250", "decision_role": "decision_maker",
                     "comment": "call after 5"}


async def new_lead(session_factory: Any, funnel: Any, tg_id: int = 8_123_456_789, **answers: Any) -> int:
    """A prospect finishes the dialogue: `bot.services.leads.submit` creates their (qualified) lead."""
    from bot.db.models import Prospect
    from bot.services.leads import submit

    async with session_factory() as session:
        prospect = Prospect(**prospect_fields(tg_id))
        session.add(prospect)
        await session.flush()
        submitted = await submit(session, funnel, prospect, {**QUALIFIED_ANSWERS, **answers}, source="ads_fb",
                                 locale="en", dialogue_seconds=42.5)
        await session.commit()
        assert submitted.created
        return submitted.lead.id


async def cas_race(session_factory: Any, first: Any, second: Any) -> tuple[Any, Any, bool]:
    """Two managers press at once, each in their own session/transaction: `first(session)` changes the
    row and keeps its transaction open while `second(session)` runs; then `first` commits.
    Returns both results and whether `second` had to wait for `first`'s row lock."""
    async with session_factory() as a, session_factory() as b:
        result_a = await first(a)
        task = asyncio.ensure_future(second(b))
        await asyncio.sleep(0.3)
        waited = not task.done()
        await a.commit()
        result_b = await asyncio.wait_for(task, 15)
        await b.commit()
    return result_a, result_b, waited


async def assert_cas_races(session_factory: Any, funnel: Any) -> None:
    """move_stage and assign under real concurrency: exactly one wins, one history event, the loser
    learns who won. Shared by the SQLite and PostgreSQL tests."""
    from sqlalchemy import func, select

    from bot.db.models import Lead, LeadEvent, StageReached
    from bot.services.leads import Actor, assign, move_stage

    ann, bob = Actor(7_000_000_001, "Ann Manager"), Actor(7_000_000_002, "Bob Manager")
    lead_id = await new_lead(session_factory, funnel)

    def mover(actor: Actor, to: str, reason: str | None = None) -> Any:
        return lambda session: move_stage(session, funnel, lead_id, expected="qualified", to=to, actor=actor,
                                          reason=reason)

    won, lost, waited = await cas_race(session_factory, mover(ann, "contacted"), mover(bob, "lost", "no_budget"))
    assert waited, "the second UPDATE did not wait for the first transaction's row lock"
    assert won.ok and won.stage == "contacted"
    assert not lost.ok and lost.problem == "already_moved" and lost.by == "Ann Manager"
    assert lost.stage == "contacted"

    won, lost, waited = await cas_race(session_factory, lambda s: assign(s, lead_id, ann),
                                       lambda s: assign(s, lead_id, bob))
    assert waited
    assert won.ok and not lost.ok and lost.problem == "already_taken" and lost.by == "Ann Manager"

    async with session_factory() as session:
        lead = await session.get(Lead, lead_id)
        assert lead.stage == "contacted" and lead.outcome is None and lead.lost_reason is None
        assert lead.manager_id == ann.id and lead.manager_name == "Ann Manager"
        assert lead.first_move_at is not None and lead.assigned_at is not None
        moves = (await session.execute(
            select(LeadEvent.actor_id, LeadEvent.to_stage).where(
                LeadEvent.lead_id == lead_id, LeadEvent.kind == "stage", LeadEvent.from_stage == "qualified")
        )).all()
        assert moves == [(ann.id, "contacted")]
        assigns = await session.scalar(select(func.count()).select_from(LeadEvent).where(
            LeadEvent.lead_id == lead_id, LeadEvent.kind == "assign"))
        assert assigns == 1
        reached = set((await session.scalars(select(StageReached.stage).where(
            StageReached.lead_id == lead_id))).all())
        assert "contacted" in reached and "lost" not in reached

    # five presses at the same moment: still exactly one move
    async def press(actor: Actor, to: str) -> Any:
        async with session_factory() as session:
            result = await move_stage(session, funnel, lead_id, expected="contacted", to=to, actor=actor)
            await session.commit()
            return result

    managers = [Actor(7_000_000_010 + n, f"Manager {n}") for n in range(5)]
    results = await asyncio.wait_for(asyncio.gather(*(press(m, "proposal") for m in managers)), 60)
    winners = [r for r in results if r.ok]
    assert len(winners) == 1
    assert {r.problem for r in results if not r.ok} == {"already_moved"}
    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(LeadEvent).where(
            LeadEvent.lead_id == lead_id, LeadEvent.kind == "stage", LeadEvent.to_stage == "proposal"))
        assert count == 1
