"""REDIS_URL: conversation state and per-user isolation shared by every replica of the bot.

Two `create_app` instances on the same Redis (database 15, flushed) and the same database play two
replicas: replica A takes /start and the consent, replica B carries on with the name."""
from __future__ import annotations

import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from sqlalchemy import func, select

from bot.db.models import FSMRecord, Lead
from bot.middlewares import IsolationMiddleware
from bot.storage import SQLAlchemyStorage
from tests.conftest import RunningApp, user

ALICE = user(1001, "Alice", "en")


def isolation_of(app) -> object:
    found = [m.isolation for m in app.dp.update.outer_middleware if isinstance(m, IsolationMiddleware)]
    assert len(found) == 1
    return found[0]


def alice_key(app, destiny: str = "default") -> StorageKey:
    return StorageKey(bot_id=app.bot.id, chat_id=ALICE["id"], user_id=ALICE["id"], destiny=destiny)


async def test_without_redis_the_database_keeps_the_state(make_settings):
    from bot.app import create_app

    app = await create_app(make_settings(), with_delivery=False)
    try:
        assert isinstance(app.storage, SQLAlchemyStorage)
        assert isinstance(isolation_of(app), SimpleEventIsolation)
    finally:
        await app.close()


@pytest.mark.redis
async def test_redis_url_selects_redis_storage_and_isolation(make_settings, redis_url):
    from bot.app import create_app

    app = await create_app(make_settings(redis_url=redis_url), with_delivery=False)
    try:
        assert isinstance(app.storage, RedisStorage)
        isolation = isolation_of(app)
        assert isinstance(isolation, RedisEventIsolation) and isolation.redis is app.storage.redis
        assert app.storage.redis.connection_pool.connection_kwargs["db"] == 15
        await app.storage.set_state(alice_key(app), "Probe:state")
        assert await app.storage.redis.keys("fsm:*") != []
    finally:
        await app.close()


@pytest.mark.redis
async def test_a_dialogue_survives_a_switch_to_another_replica(make_settings, emulator, client, redis_url):
    from bot.app import create_app
    from tests.dialogue.test_dialogue_flow import Chat

    settings = make_settings(redis_url=redis_url)
    replica_a = RunningApp(await create_app(settings), emulator)
    replica_b: RunningApp | None = None
    await replica_a.start()
    try:
        chat = Chat(replica_a, client, ALICE)
        first = await chat.command("/start", "ads_fb")
        assert "Do you agree" in first["text"]
        await chat.press("I agree")
        state_a = await replica_a.app.storage.get_state(alice_key(replica_a.app))
        assert state_a is not None

        # replica A stops taking updates (a rolling restart); replica B, with its own Redis client, takes over
        replica_a.poller.stop()
        await asyncio.wait_for(replica_a.task, 10)
        replica_b = RunningApp(await create_app(settings), emulator)
        await replica_b.start()
        chat.running = replica_b
        assert await replica_b.app.storage.get_state(alice_key(replica_b.app)) == state_a

        reply = await chat.say("Alice Smith")
        assert reply["reply_markup"]["keyboard"][0][0]["request_contact"] is True  # the phone step
        data = await replica_b.app.storage.get_data(alice_key(replica_b.app))
        assert data["answers"]["name"] == "Alice Smith"
        assert await replica_a.app.storage.get_data(alice_key(replica_a.app)) == data  # one shared state
        async with replica_b.session() as session:
            assert await session.scalar(select(func.count()).select_from(FSMRecord)) == 0  # not in the DB
            assert await session.scalar(select(func.count()).select_from(Lead)) == 0

        # the per-user lock is shared too: while A handles an update of Alice's, B waits for it
        lock_a, lock_b = isolation_of(replica_a.app), isolation_of(replica_b.app)
        key = alice_key(replica_a.app, destiny="isolation")
        entered = asyncio.Event()

        async def replica_b_handles() -> None:
            async with lock_b.lock(key):
                entered.set()

        async with lock_a.lock(key):
            task = asyncio.ensure_future(replica_b_handles())
            await asyncio.sleep(0.3)
            assert not entered.is_set()
        await asyncio.wait_for(task, 5)
        assert entered.is_set()
    finally:
        if replica_b is not None:
            await replica_b.stop()
        await replica_a.app.close()
