"""In-process: one user's updates are handled one at a time, a flooding user is slowed down without
affecting anyone else, a poison update becomes a dead letter with an apology, and trouble that is not the
handler's fault (a busy database, Telegram's 5xx, an expired callback) neither loses nor dead-letters the
update. The real app and poller run against the emulator (`tests/conftest.py::RunningApp`)."""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.db.models import DeadLetter, FSMRecord, OutboxMessage, Prospect
from bot.services import dialogue as dialogue_service
from tests.conftest import RunningApp, user
from tests.reliability.conftest import figure, is_bot, shows

ALICE = user(1101, "Alice", "en")
ANN = user(1102, "Ann", "en")


@pytest.fixture
async def start(make_settings, emulator, client) -> AsyncIterator[Callable[..., Any]]:
    """`await start(**settings)`: the app and its poller, in this event loop."""
    from bot.app import create_app

    started: list[RunningApp] = []

    async def run(**extra: Any) -> RunningApp:
        running = RunningApp(await create_app(make_settings(**extra)), emulator)
        await running.start()
        started.append(running)
        return running

    yield run
    for running in started:
        await running.stop()


def bot_texts(emulator: Any, chat_id: int, after: int = 0) -> list[str]:
    return [m.get("text", "") for m in emulator.messages(chat_id) if is_bot(m) and m["message_id"] > after]


def last_message_id(emulator: Any, chat_id: int) -> int:
    messages = emulator.messages(chat_id)
    return messages[-1]["message_id"] if messages else 0


async def state_of(running: RunningApp, uid: int) -> tuple[str | None, dict[str, Any]]:
    async with running.session() as session:
        record = await session.scalar(select(FSMRecord).where(FSMRecord.key.contains(f":{uid}:{uid}")))
        return (record.state, record.data) if record else (None, {})


async def dead_letters(running: RunningApp) -> list[DeadLetter]:
    async with running.session() as session:
        return list((await session.scalars(select(DeadLetter))).all())


async def say(running: RunningApp, who: dict[str, Any], text: str | None = None, **kind: Any) -> dict[str, Any]:
    sent = running.emulator.inject_message(who, text, **kind)
    await running.idle()
    return sent


async def press(running: RunningApp, who: dict[str, Any], label: str) -> dict[str, Any] | None:
    pressed = running.emulator.press(who, who["id"], label)
    await running.idle()
    return running.emulator.callback_answer(pressed["callback_query_id"])


async def to_phone_step(running: RunningApp, who: dict[str, Any] = ALICE) -> None:
    await say(running, who, "/start")
    await press(running, who, "I agree")
    await say(running, who, "Alice Smith")
    assert (await state_of(running, who["id"]))[1]["step"] == "phone"


# ------------------------------------------------------------------------------------------ one at a time


async def test_ten_concurrent_messages_at_the_phone_step_make_one_phone(start, emulator):
    running = await start(flood_messages=50)
    await to_phone_step(running)
    before = last_message_id(emulator, ALICE["id"])
    phones = [f"+38067444{i:04d}" for i in range(10)]
    for number in phones:  # one getUpdates batch, ten concurrent tasks
        emulator.inject_message(ALICE, number)
    await running.idle()
    replies = bot_texts(emulator, ALICE["id"], before)
    async with running.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == ALICE["id"]))
    state, data = await state_of(running, ALICE["id"])
    assert prospect.phone == data["answers"]["phone"] and prospect.phone in phones
    assert (state, data["step"]) == ("Flow:step", "email")
    assert sum("Got it" in text for text in replies) == 1
    assert sum("valid email" in text for text in replies) == 9
    assert await dead_letters(running) == []


async def test_ten_quick_presses_of_one_button_advance_once(start, emulator):
    running = await start()
    await say(running, ALICE, "/start")
    consent = next(m for m in emulator.messages(ALICE["id"]) if shows(m, "I agree"))
    queries = [emulator.press(ALICE, ALICE["id"], "I agree", message_id=consent["message_id"]) for _ in range(10)]
    await running.idle()
    answers = [emulator.callback_answer(q["callback_query_id"]) for q in queries]
    assert all(answer is not None for answer in answers)  # every press answered
    assert sum(answer["text"] == "This button belongs to an earlier question." for answer in answers) == 9
    assert sum("What's your name?" in text for text in bot_texts(emulator, ALICE["id"])) == 1
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "name"
    figure("ten presses of one button (in-process)", presses=10, advanced=1, answered=10)


# ------------------------------------------------------------------------------------------ flood control


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_flood_control_slows_one_user_down_and_nobody_else(start, emulator, monkeypatch):
    """FLOOD_MESSAGES=8 in FLOOD_WINDOW_SECONDS=4: the ninth message gets one polite slow-down, the rest
    are dropped (by design: they are confirmed and not redelivered) while the mute lasts; another user is
    served all along, and after the mute the flooder is served again. Time is the middleware's
    `time.monotonic`, replaced (in that module only) by a clock the test moves."""
    clock = Clock()
    monkeypatch.setattr("bot.middlewares.time", SimpleNamespace(monotonic=clock))
    running = await start(flood_messages=8, flood_window_seconds=4, flood_mute_seconds=15)
    await say(running, ALICE, "/start")  # 1st message; at the consent step every text is reprompted
    before = last_message_id(emulator, ALICE["id"])
    for i in range(11):
        emulator.inject_message(ALICE, f"hello {i}")
    await say(running, ANN, "/start")  # somebody else, during the flood
    replies = bot_texts(emulator, ALICE["id"], before)
    assert sum("buttons" in text for text in replies) == 7  # messages 2-8 answered
    slow_downs = [text for text in replies if "sending messages very quickly" in text]
    assert slow_downs == ["⏳ You are sending messages very quickly. Please wait 15 seconds, then continue."]
    assert len(replies) == 8  # the three after the ninth: dropped, no reply
    assert any("Do you agree" in text for text in bot_texts(emulator, ANN["id"]))

    clock.now += 10  # still muted
    muted = last_message_id(emulator, ALICE["id"])
    await say(running, ALICE, "anyone?")
    assert bot_texts(emulator, ALICE["id"], muted) == []
    clock.now += 6  # the mute is over
    await say(running, ALICE, "sorry")
    assert any("buttons" in text for text in bot_texts(emulator, ALICE["id"], muted))
    assert await dead_letters(running) == []
    figure("flood control (in-process, default limits)", messages=12, answered=7, slow_down_messages=1,
           dropped=4, other_user_served=True, served_after_mute=True)


# ------------------------------------------------------------------------------------------ poison and trouble


async def test_poison_message_becomes_a_dead_letter_with_an_apology_and_the_chat_goes_on(
        start, emulator, monkeypatch, caplog):
    running = await start()
    await to_phone_step(running, ANN)
    await say(running, ALICE, "/start")
    await press(running, ALICE, "I agree")
    real_store = dialogue_service.store

    def store(conv: Any, prospect: Any, step: Any, value: str, **kw: Any) -> None:
        if value == "Poison Pill":
            raise RuntimeError("a bug in the handler")
        real_store(conv, prospect, step, value, **kw)

    monkeypatch.setattr(dialogue_service, "store", store)
    caplog.set_level(logging.ERROR, logger="bot.middlewares")
    before = last_message_id(emulator, ALICE["id"])
    poison = await say(running, ALICE, "Poison Pill")
    [letter] = await dead_letters(running)
    assert (letter.update_id, letter.user_id) == (poison["update_id"], ALICE["id"])
    assert letter.error == "RuntimeError: a bug in the handler" and "a bug in the handler" in letter.traceback
    assert letter.update["message"]["text"] == "Poison Pill"
    assert bot_texts(emulator, ALICE["id"], before) == [
        ("😔 Sorry, something went wrong on our side and your last message was not processed. "
         "Please send it again in a moment.")]
    assert f"update {poison['update_id']} failed" in caplog.text
    _, data = await state_of(running, ALICE["id"])
    assert data["step"] == "name" and "name" not in data["answers"]  # rolled back, nothing half-done
    # the same chat goes on, and so does everybody else
    await say(running, ALICE, "Alice Smith")
    assert (await state_of(running, ALICE["id"]))[1]["answers"]["name"] == "Alice Smith"
    await say(running, ANN, "+380671110000")
    assert (await state_of(running, ANN["id"]))[1]["step"] == "email"
    assert len(await dead_letters(running)) == 1


async def test_poison_press_is_answered_with_the_apology(start, emulator, monkeypatch):
    running = await start()
    await say(running, ALICE, "/start")

    async def consent(*args: Any, **kw: Any) -> None:
        raise KeyError("broken")

    monkeypatch.setattr(dialogue_service, "consent", consent)
    before = last_message_id(emulator, ALICE["id"])
    answer = await press(running, ALICE, "I agree")
    # the handler's own answer to the press was rolled back with it (replies go out after the commit),
    # so the apology answers the press, and nothing else was said
    assert answer is not None and answer["text"].startswith("😔 Sorry, something went wrong")
    assert bot_texts(emulator, ALICE["id"], before) == []
    assert len(await dead_letters(running)) == 1
    monkeypatch.undo()
    # the keyboard was already taken off that message; /start resumes at the same (rolled back) step
    await say(running, ALICE, "/start")
    await press(running, ALICE, "I agree")
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "name"


async def test_a_busy_database_is_not_a_dead_letter_the_update_is_handled_again(start, emulator, monkeypatch):
    """SQLite's "database is locked" (or a database away) is not the handler's fault: nothing is committed,
    the poller handles the update again with backoff, and the prospect never sees an apology."""
    running = await start()
    await to_phone_step(running)
    failures = []
    real_store = dialogue_service.store

    def store(*args: Any, **kw: Any) -> None:
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError("UPDATE prospects ...", {}, sqlite3.OperationalError("database is locked"))
        real_store(*args, **kw)

    monkeypatch.setattr(dialogue_service, "store", store)
    before = last_message_id(emulator, ALICE["id"])
    await say(running, ALICE, "+380671230000")
    replies = bot_texts(emulator, ALICE["id"], before)
    assert len(failures) == 2
    assert not any("Sorry" in text for text in replies)
    assert sum("Got it" in text for text in replies) == 1
    assert (await state_of(running, ALICE["id"]))[1]["answers"]["phone"] == "+380671230000"
    assert await dead_letters(running) == []
    figure("busy database (in-process)", failed_attempts=2, handled_once=True, dead_letters=0, apologies=0)


async def test_telegram_5xx_on_a_reply_is_retried_inside_the_update(start, emulator):
    running = await start()
    await to_phone_step(running)
    emulator.add_faults([{"method": "sendMessage", "chat_id": ALICE["id"], "error_code": 502, "count": 2}])
    before = last_message_id(emulator, ALICE["id"])
    await say(running, ALICE, "+380671230000")
    assert sum("Got it" in text for text in bot_texts(emulator, ALICE["id"], before)) == 1
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "email"
    assert await dead_letters(running) == []


async def test_a_reply_that_keeps_failing_is_kept_in_the_outbox_and_the_answer_is_kept(start, emulator):
    """Replies go out after the commit: the phone is stored whatever Telegram does. A reply that fails
    three times (about a second) is handed to the outbox, whose worker sends it once Telegram is back."""
    running = await start()
    await to_phone_step(running)
    emulator.add_faults([{"method": "sendMessage", "chat_id": ALICE["id"], "error_code": 500, "count": 4}])
    before = last_message_id(emulator, ALICE["id"])
    await say(running, ALICE, "+380671230000")
    assert await dead_letters(running) == []
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "email"
    async with running.session() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "reply"))).all()
    assert [row.chat_id for row in rows] == [ALICE["id"]]  # the first of the two replies failed 3 times
    await running.idle()  # the delivery worker sends it now that Telegram answers again
    async with running.session() as session:
        row = await session.get(OutboxMessage, rows[0].id)
    assert row is not None and row.status == "sent"
    assert any(text == row.payload["text"] for text in bot_texts(emulator, ALICE["id"], before))


async def test_an_expired_callback_query_is_still_handled(start, emulator):
    """After a restart Telegram delivers presses again, but their queries may be too old to answer: the
    press still takes effect (only the button's spinner cannot be stopped)."""
    running = await start()
    await say(running, ALICE, "/start")
    emulator.add_faults([{"method": "answerCallbackQuery", "error_code": 400, "count": 1,
                          "description": "Bad Request: query is too old and response timeout expired or query ID "
                                         "is invalid"}])
    await press(running, ALICE, "I agree")
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "name"
    assert await dead_letters(running) == []


async def test_a_garbage_press_is_answered_and_changes_nothing(start, emulator):
    running = await start()
    await say(running, ALICE, "/start")
    before = await state_of(running, ALICE["id"])
    consent = next(m for m in emulator.messages(ALICE["id"]) if shows(m, "I agree"))
    for data in ("zzz", "a:", "n:", "L:t:x", "m:-1", "f:maybe", "l:xx", "\u202e\u200b", "x" * 64):
        query = emulator.inject_callback(ALICE, ALICE["id"], consent["message_id"], data)
        await running.idle()
        assert emulator.callback_answer(query["callback_query_id"]) is not None, data
    assert await state_of(running, ALICE["id"]) == before
    assert await dead_letters(running) == []


async def test_a_crash_between_the_commit_and_the_replies_gets_them_when_the_update_comes_again(
        start, emulator, monkeypatch):
    """Replies go out after the commit. If the bot dies in between, the update is not confirmed, so it is
    delivered again; its dedupe marker holds the replies, which are sent then (and nothing is redone)."""
    from bot import middlewares

    running = await start()
    await to_phone_step(running)
    seen: list[Any] = []
    real_mark = middlewares.UnitOfWorkMiddleware._mark_handled

    def mark(session: Any, update: Any, replies: Any, bot: Any) -> None:
        seen.append(update)
        real_mark(session, update, replies, bot)

    async def crash(*args: Any, **kw: Any) -> None:  # the process is gone: nothing is sent
        return None

    monkeypatch.setattr(middlewares.UnitOfWorkMiddleware, "_mark_handled", staticmethod(mark))
    monkeypatch.setattr(middlewares, "send_replies", crash)
    before = last_message_id(emulator, ALICE["id"])
    await say(running, ALICE, "+380671230000")
    assert bot_texts(emulator, ALICE["id"], before) == []
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "email"
    monkeypatch.undo()
    [update] = seen
    await running.app.dp.feed_update(running.app.bot, update)  # delivered again after the restart
    texts = bot_texts(emulator, ALICE["id"], before)
    assert len(texts) == 2 and "email" in texts[1].lower(), texts
    assert (await state_of(running, ALICE["id"]))[1]["step"] == "email"
    async with running.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == ALICE["id"]))
    assert prospect is not None and prospect.phone == "+380671230000"
