"""Personal data, in-process: /mydata sends everything stored about the prospect (a summary and a JSON
document), /forget erases it after a confirmation (the leads stay as anonymous rows for the statistics),
callback data carries ids only, and the logs of a whole run hold no name, phone or e-mail."""
from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.models import (
    DeadLetter,
    FSMRecord,
    Lead,
    LeadEvent,
    Prospect,
    StageReached,
    utcnow,
)
from bot.logs import MaskingFilter, mask
from tests.conftest import MANAGERS, STAFF_CHAT, RunningApp, user
from tests.reliability.conftest import assert_no_personal_data, figure, is_bot, labels

NAME, PHONE, EMAIL = "Zelda Quixote", "+380671234599", "zelda.quixote@example.org"
FIRST, USERNAME = "Zeldafirst", "zq_secret_handle"
QUESTION = "Can you call me on +44 20 7946 0958 or write to zq.other@example.com?"
COMMENT = "Budget approved by Quixote Holdings"
ZELDA = user(1201, FIRST, "en", username=USERNAME)
MAX = user(MANAGERS[0], "Max", "en")
SECRETS = [NAME, PHONE, EMAIL, FIRST, USERNAME, "+442079460958", "zq.other@example.com", "Quixote Holdings"]


class Prospect_:
    """Zelda, talking to the in-process app."""

    def __init__(self, running: Any) -> None:
        self.running, self.emulator = running, running.emulator
        self.id = ZELDA["id"]

    def last_id(self, chat: int | None = None) -> int:
        messages = self.emulator.messages(self.id if chat is None else chat)
        return messages[-1]["message_id"] if messages else 0

    def bot_messages(self, after: int = 0, chat: int | None = None) -> list[dict[str, Any]]:
        return [m for m in self.emulator.messages(self.id if chat is None else chat)
                if is_bot(m) and m["message_id"] > after]

    async def say(self, text: str | None = None, **kind: Any) -> list[dict[str, Any]]:
        before = self.last_id()
        self.emulator.inject_message(ZELDA, text, **kind)
        await self.running.idle()
        return self.bot_messages(before)

    async def press(self, label: str) -> list[dict[str, Any]]:
        before = self.last_id()
        self.emulator.press(ZELDA, self.id, label)
        await self.running.idle()
        return self.bot_messages(before)

    async def qualify(self) -> None:
        await self.say("/start")
        await self.press("I agree")
        await self.say(NAME)
        await self.say(contact={"phone_number": PHONE, "first_name": FIRST, "user_id": self.id})
        await self.say(EMAIL)
        for label in ("A custom project", "Over $20,000", "As soon as possible", "Private person"):
            await self.press(label)
        await self.say(COMMENT)
        thanks = await self.press("Confirm")
        assert any("Thank you" in m.get("text", "") for m in thanks)


async def rows(running: Any, model: Any, *where: Any) -> list[Any]:
    async with running.session() as session:
        return list((await session.scalars(select(model).where(*where))).all())


async def with_card_and_messages(running: Any) -> tuple[Prospect_, Lead]:
    """Zelda qualifies, her card is posted, she writes to the managers and a manager answers her."""
    zelda = Prospect_(running)
    await zelda.qualify()
    [lead] = await rows(running, Lead)
    assert lead.card_message_id is not None
    await zelda.say(QUESTION)  # relayed to the staff chat under her card
    running.emulator.inject_message(MAX, "Sure, tomorrow at 10", chat_id=STAFF_CHAT,
                                    reply_to_message_id=lead.card_message_id)
    await running.idle()
    assert any("tomorrow at 10" in m.get("text", "") for m in zelda.bot_messages())
    return zelda, lead


def everything_in(path: str) -> str:
    """Every value of every row of every table of the database, as one text."""
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"'))


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "leadbot.db")


@pytest.fixture
async def running_app(make_settings, emulator, client) -> AsyncIterator[RunningApp]:
    """The app and poller in this event loop; flood control is set high: these tests send many messages."""
    from bot.app import create_app

    running = RunningApp(await create_app(make_settings(flood_messages=100)), emulator)
    await running.start()
    yield running
    await running.stop()


# ------------------------------------------------------------------------------------------ /mydata


async def test_mydata_sends_a_summary_and_a_json_document_with_everything(running_app, emulator):
    zelda, lead = await with_card_and_messages(running_app)
    replies = await zelda.say("/mydata")
    summary, document = replies
    assert f"Name: {NAME}" in summary["text"] and f"Phone: {PHONE}" in summary["text"]
    assert f"Email: {EMAIL}" in summary["text"] and "Requests: 1" in summary["text"]
    assert document["document"]["file_name"] == "my-data.json" and document["caption"] == "Your data (JSON)"
    data = json.loads(emulator.file(document["document"]["file_id"]).data)
    assert (data["telegram_id"], data["username"], data["first_name"]) == (zelda.id, USERNAME, FIRST)
    assert (data["name"], data["phone"], data["phone_verified"], data["email"]) == (NAME, PHONE, True, EMAIL)
    assert data["language"] == "en" and data["consent_given"]
    [exported] = data["leads"]
    assert exported["id"] == lead.id and exported["stage"] == "Qualified" and exported["score"] == lead.score
    assert (exported["name"], exported["phone"], exported["email"]) == (NAME, PHONE, EMAIL)
    assert exported["answers"]["Budget"] == "Over $20,000" and COMMENT in exported["answers"].values()
    assert [(m["kind"], m["text"]) for m in exported["messages"]] == [
        ("relay_in", QUESTION), ("relay_out", "Sure, tomorrow at 10")]


async def test_mydata_for_someone_we_know_nothing_about(running_app, emulator):
    stranger = user(1299, "Nobody", "en")
    emulator.inject_message(stranger, "/mydata")
    await running_app.idle()
    [reply] = [m for m in emulator.messages(stranger["id"]) if is_bot(m)]
    assert reply["text"] == "We don't store any personal data about you."


# ------------------------------------------------------------------------------------------ /forget


async def test_forget_asks_first_and_no_keeps_everything(running_app):
    zelda, _ = await with_card_and_messages(running_app)
    [ask] = await zelda.say("/forget")
    assert "cannot be undone" in ask["text"]
    assert labels(ask) == ["🗑 Yes, erase my data", "Keep my data"]
    before = [(p.name, p.phone, p.email) for p in await rows(running_app, Prospect)]
    await zelda.press("Keep my data")
    assert zelda.bot_messages()[-1]["text"] == "Nothing was erased."  # the question, edited
    assert [(p.name, p.phone, p.email) for p in await rows(running_app, Prospect)] == before
    [lead] = await rows(running_app, Lead)
    assert not lead.anonymized and lead.name == NAME


async def test_forget_yes_erases_the_personal_data_and_keeps_anonymous_leads(running_app, emulator, db_path):
    zelda, lead = await with_card_and_messages(running_app)
    async with running_app.session() as session:  # a failed update of hers, kept whole for the operators
        session.add(DeadLetter(update_id=999, user_id=zelda.id, error="RuntimeError", traceback="...",
                               update={"message": {"text": QUESTION}}, created_at=utcnow()))
        await session.commit()
    stages_before = await rows(running_app, StageReached)
    assert any(secret in everything_in(db_path) for secret in SECRETS)

    await zelda.say("/forget")
    await zelda.press("Yes, erase my data")
    assert zelda.bot_messages()[-1]["text"].startswith("✅ Your personal data has been erased.")

    [prospect] = await rows(running_app, Prospect)
    assert (prospect.name, prospect.phone, prospect.email, prospect.username, prospect.first_name) == (None,) * 5
    assert prospect.forgotten_at is not None and prospect.consent_at is None
    [after] = await rows(running_app, Lead)
    assert after.anonymized and (after.name, after.phone, after.email, after.username, after.tg_id) == (None,) * 5
    assert (after.id, after.stage, after.source, after.score, after.band) == (
        lead.id, lead.stage, lead.source, lead.score, lead.band)  # the statistics keep the lead
    assert after.answers == {k: v for k, v in lead.answers.items() if k != "comment"}  # choices only
    assert len(await rows(running_app, StageReached)) == len(stages_before)
    assert all(event.text is None for event in await rows(running_app, LeadEvent))
    assert await rows(running_app, FSMRecord, FSMRecord.key.contains(f":{zelda.id}:")) == []
    # the card was edited: the staff chat no longer shows who she is
    card = next(m for m in emulator.messages(STAFF_CHAT) if m["message_id"] == lead.card_message_id)
    assert "Personal data erased" in card["text"] and NAME not in card["text"] and PHONE not in card["text"]
    # nothing personal is left anywhere in the database (outbox copies, dead letters included)
    assert_no_personal_data(everything_in(db_path), SECRETS)
    # a manager's reply can no longer reach her
    before = zelda.last_id()
    emulator.inject_message(MAX, "Hello?", chat_id=STAFF_CHAT, reply_to_message_id=lead.card_message_id)
    await running_app.idle()
    assert zelda.bot_messages(before) == []
    assert "erased their data" in [m for m in emulator.messages(STAFF_CHAT) if is_bot(m)][-1]["text"]
    # and what /mydata shows now is anonymous
    summary, document = await zelda.say("/mydata")
    assert_no_personal_data(summary["text"] + emulator.file(document["document"]["file_id"]).data.decode(), SECRETS)
    async with running_app.session() as session:
        leads = await session.scalar(select(func.count()).select_from(Lead))
    figure("/forget", leads_kept_anonymous=leads, personal_values_left_in_database=0, card_edited=True)


# ------------------------------------------------------------------------------------------ callback data, logs


async def test_callback_data_carries_ids_only(running_app, emulator):
    await with_card_and_messages(running_app)
    zelda = Prospect_(running_app)
    await zelda.say("/forget")
    await zelda.say("/language")
    pressed = [button.get("callback_data", "") for chat in (zelda.id, STAFF_CHAT)
               for m in emulator.messages(chat, include_deleted=True) if is_bot(m)
               for row in (m.get("reply_markup") or {}).get("inline_keyboard", []) for button in row]
    assert len(pressed) > 10
    assert all(len(data.encode()) <= 64 for data in pressed)
    assert_no_personal_data("\n".join(pressed), SECRETS)
    assert all(part.isdigit() or part.lstrip("-").isdigit() or part.isascii() and part.replace("_", "").isalnum()
               or part == "" for data in pressed for part in data.split(":"))


async def test_the_logs_of_a_whole_run_hold_no_personal_data(running_app, emulator, caplog, monkeypatch):
    """Everything the bot logs (DEBUG and up) during a dialogue, the handoff, relays both ways, a poison
    update with her name in the exception, /mydata and /forget. Names are never logged at all; phones and
    e-mails do not even reach the masking filter that production logging puts in front of the output."""
    from bot.services import dialogue as dialogue_service

    caplog.set_level(logging.DEBUG)
    zelda, _ = await with_card_and_messages(running_app)
    real_enter = dialogue_service.enter

    async def enter(*args: Any, **kw: Any) -> None:
        raise ValueError(f"cannot handle {NAME} at {PHONE} / {EMAIL}")  # a message full of personal data

    monkeypatch.setattr(dialogue_service, "enter", enter)
    await zelda.say("/start")
    await zelda.press("Update my request")
    monkeypatch.setattr(dialogue_service, "enter", real_enter)
    assert len(await rows(running_app, DeadLetter)) == 1
    await zelda.say("/mydata")
    await zelda.say("/forget")
    await zelda.press("Yes, erase my data")

    # the emulator's own logs are not the bot's; aiosqlite's DEBUG lines quote SQL parameters and are
    # silenced by the logging set-up (see the next test)
    ours = [r for r in caplog.records if not r.name.startswith(("aiohttp", "bot.emulator", "asyncio", "aiosqlite"))]
    assert any(r.name.startswith("bot.") for r in ours) and any("dead letter" in r.getMessage() for r in ours)
    raw = "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)
    assert_no_personal_data(raw, SECRETS)
    masking = MaskingFilter()
    for record in ours:
        masking.filter(record)
    assert_no_personal_data("\n".join(r.getMessage() for r in ours), SECRETS)
    figure("log masking (in-process, DEBUG)", records=len(ours), personal_values=0)


def test_debug_logging_does_not_let_the_database_driver_log_parameters():
    from bot.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("DEBUG")
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("aiogram.event").setLevel(logging.NOTSET)


@pytest.mark.parametrize("text", [
    "+380 67 123 45 67", "+380671234567", "(067) 123-45-67", "+1 (415) 555-2671", "+44 20 7946 0958",
    "bob.brown+leads@example.co.uk", "зельда@пример.укр", "a.b@c.io",
])
def test_mask_hides_phones_and_emails(text):
    masked = mask(f"prospect wrote: {text} (update 123456789)")
    assert text not in masked and "(update 123456789)" in masked
