"""The floor bot (`tests.bench.floor_bot`) takes prospects through the bench's whole dialogue against the
emulator, with as many Bot API calls as the real bot makes for it, and with its database keeps every update
once. Nothing here depends on timing."""
from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import func, select

from bot.api_session import BotSession
from bot.db.engine import create_engine
from bot.fastjson import json_dumps, json_loads
from tests.bench import floor_bot
from tests.bench.inprocess import measure
from tests.bench.load import DIALOGUE, Run
from tests.conftest import TOKEN

REPLIES = {"sendMessage", "answerCallbackQuery", "editMessageReplyMarkup", "editMessageText"}
PROSPECTS = 3


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/floor.db")
    async with engine.begin() as conn:
        await conn.run_sync(floor_bot.metadata.create_all)
    yield engine
    await engine.dispose()


async def play(emulator, client, engine) -> tuple[dict, Counter]:
    """PROSPECTS prospects through the dialogue with the floor bot polling the emulator; the run's figures
    and the bot's calls by method."""
    since = (await client.state())["calls"]
    bot = Bot(TOKEN, session=BotSession(api=TelegramAPIServer.from_base(emulator.base_url),
                                        json_loads=json_loads, json_dumps=json_dumps))
    dp = floor_bot.dispatcher(floor_bot.Floor(engine))
    polling = asyncio.create_task(dp.start_polling(bot, polling_timeout=1, handle_signals=False))
    try:
        async with aiohttp.ClientSession() as http, Run(http, emulator.base_url, timeout=20) as run:
            result = await run.closed_loop(DIALOGUE, PROSPECTS, 70_000)
    finally:
        await dp.stop_polling()
        await polling
        await bot.session.close()
    calls = Counter(call["method"] for call in await client.calls(since=since))
    return result, calls


@pytest.mark.parametrize("with_database", [True, False], ids=["transaction", "calls-only"])
async def test_the_floor_bot_makes_the_real_dialogues_calls(emulator, client, engine, with_database):
    result, calls = await play(emulator, client, engine if with_database else None)
    assert result["completed_prospects"] == PROSPECTS and result["lost"] == 0
    real = await measure(rounds=1, prospects=1, warmup=0)  # the real bot's replies, in-process
    per_dialogue = sum(n for method, n in calls.items() if method in REPLIES) / PROSPECTS
    assert per_dialogue == round(real["bot_api_calls_per_update"] * len(DIALOGUE))
    assert calls["answerCallbackQuery"] == PROSPECTS * sum(action.kind == "press" for action in DIALOGUE)
    if with_database:
        async with engine.connect() as conn:
            steps = (await conn.execute(select(floor_bot.conversations.c.step))).scalars().all()
            marked = await conn.scalar(select(func.count()).select_from(floor_bot.handled))
        assert steps == [len(DIALOGUE)] * PROSPECTS and marked == PROSPECTS * len(DIALOGUE)


async def record_twice(engine) -> None:
    floor = floor_bot.Floor(engine)
    assert await floor.record(5001, update_id=1, answer="/start") == 0
    assert await floor.record(5001, update_id=1, answer="/start") is None
    assert await floor.record(5001, update_id=2, answer="yes") == 1
    assert await floor.record(5002, update_id=3, answer="/start") == 0
    async with engine.connect() as conn:
        steps = {row.tg_id: row.step for row in await conn.execute(select(floor_bot.conversations))}
        answers = [tuple(row) for row in await conn.execute(
            select(floor_bot.handled.c.update_id, floor_bot.handled.c.answer).order_by(floor_bot.handled.c.update_id))]
    assert steps == {5001: 2, 5002: 1}
    assert answers == [(1, "/start"), (2, "yes"), (3, "/start")]


async def test_an_update_delivered_again_is_not_recorded_twice(engine):
    await record_twice(engine)


@pytest.mark.postgres
async def test_an_update_delivered_again_is_not_recorded_twice_on_postgres():
    from tests.bench.harness import postgres_available, postgres_database

    if (why := await postgres_available()) is not None:
        pytest.skip(why)
    async with postgres_database("floortest") as database:
        engine = create_engine(database.url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(floor_bot.metadata.create_all)
            assert len(floor_bot.Floor(engine).writes) == 1  # one statement, one round trip
            await record_twice(engine)
        finally:
            await engine.dispose()


def test_each_question_shows_what_the_next_action_needs():
    for action, asked in zip(DIALOGUE, floor_bot.QUESTIONS, strict=True):
        assert action.expect({"text": asked.text, "reply_markup": asked.markup.model_dump() if asked.markup else None}), (
            action.name)
