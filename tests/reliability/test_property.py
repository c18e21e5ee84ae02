"""Property-based (hypothesis): random texts (any unicode, emoji, RTL, zero-width, up to 5000 characters),
random content types and random callback data, thrown at every step of the dialogue, after the handoff
and at a lead card in the staff chat. Whatever arrives: no unhandled exception (no dead letter), every
message is answered (or, after the handoff, relayed to the managers), every press is answered, earlier
answers are never lost, and garbage changes no row.

In-process: the real app and poller against the emulator, one app per test (hypothesis examples share
it, so every example takes a new prospect, or a prospect parked at a step that garbage cannot move).
Examples are derandomized, so a run is reproducible."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.db.models import (
    DeadLetter,
    DialogueRun,
    FSMRecord,
    Lead,
    LeadEvent,
    OutboxMessage,
    Prospect,
    StageReached,
)
from handlers.callbacks import AnswerCb, ForgetCb, LangCb, LeadCb, MenuCb, NavCb
from tests.conftest import MANAGERS, STAFF_CHAT, RunningApp, user
from tests.reliability.conftest import figure, is_bot

EXAMPLES = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# how a prospect gets from one step to the next with answers that qualify (B2B: every question is asked)
SCRIPT: list[tuple[str, tuple[str, Any]]] = [
    ("consent", ("say", "/start")),
    ("name", ("press", "I agree")),
    ("phone", ("say", "Yara Random")),
    ("email", ("contact", "+380671112233")),
    ("need", ("say", "yara@example.com")),
    ("budget", ("press", "A custom project")),
    ("timeline", ("press", "Over $20,000")),
    ("customer_type", ("press", "As soon as possible")),
    ("company_size", ("press", "Company")),
    ("decision_role", ("press", "51–250")),
    ("comment", ("press", "I make the decision")),
    ("summary", ("press", "Skip")),
    ("handed_off", ("press", "Confirm")),
]
STEPS = [name for name, _ in SCRIPT]
FACTORIES: tuple[type[CallbackData], ...] = (AnswerCb, NavCb, MenuCb, LangCb, ForgetCb, LeadCb)

# ------------------------------------------------------------------------------------------ strategies

SPECIAL = list("😀👋🏽🇺🇦‍❤️‍🔥") + list("שלום مرحبا") + ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e",
                                                          "\u0301", "\u0000", "\n", "\t", " ", "<", ">", "&"]
texts = st.one_of(
    st.text(min_size=1, max_size=200),
    st.text(alphabet=st.sampled_from(SPECIAL), min_size=1, max_size=40),
    st.builds(lambda chunk, n: (chunk * n)[:5000], st.text(min_size=1, max_size=5), st.integers(800, 5000)),
    st.sampled_from(["/", "/start@someone_else", "/unknown", "  ", "<b>bold</b>", "+380 67 123 45 67",
                     "not@an@email", "a" * 101, "x" * 1001, "0" * 4096]),
)
CONTENT = [{"sticker": True}, {"photo": True}, {"voice": True}, {"document": True}, {"video": True},
           {"location": {"latitude": 50.45, "longitude": 30.52}}]
messages = st.one_of(
    texts.map(lambda text: {"text": text}),
    st.sampled_from(CONTENT),
    st.builds(lambda caption: {"photo": True, "caption": caption}, st.text(min_size=1, max_size=100)),
    st.builds(lambda phone, own: {"contact": {"phone_number": phone, "first_name": "C", **({"user_id": 0} if own else {})}},
              st.one_of(st.text(max_size=20), st.sampled_from(["+380501234567", "12345", ""])), st.booleans()),
)
garbage = st.one_of(
    st.binary(min_size=1, max_size=64).map(lambda raw: raw.decode("utf-8", "replace")),
    st.text(min_size=1, max_size=64),
    st.builds(lambda prefix, rest: prefix + rest,
              st.sampled_from(["a:", "n:", "L:", "m:", "l:", "f:", "a:need:", "L:m:", "L:t:", "n:back:", "m:-"]),
              st.text(max_size=40)),
    st.text(min_size=65, max_size=120),  # longer than Telegram allows: only a forged client sends it
)
small = st.integers(-3, 20) | st.integers(-(2**40), 2**40)
keys = st.sampled_from(STEPS) | st.text(max_size=12).map(lambda s: s.replace(":", ""))


def packed(factory: type[CallbackData], **fields: Any) -> str:
    try:
        return factory(**fields).pack()
    except ValueError:  # too long for a button: what a forged client could still send, cut at 64 bytes
        raw = ":".join([factory.__prefix__, *map(str, fields.values())])
        return raw.encode()[:64].decode("utf-8", "ignore")


well_formed = st.one_of(
    st.builds(lambda step, idx: packed(AnswerCb, step=step, idx=idx), keys, small),
    st.builds(lambda action, step: packed(NavCb, action=action, step=step),
              st.sampled_from(["consent_yes", "consent_no", "back", "skip", "summary", "confirm", "edit", "edit_step",
                               "update", "keep"]) | keys, keys),
    st.builds(lambda idx: packed(MenuCb, idx=idx), small),
    st.builds(lambda code: packed(LangCb, code=code), st.sampled_from(["en", "uk", "ru", "de", "xx"])),
    st.builds(lambda action, lead, at, to, reason: packed(LeadCb, action=action, lead=lead, at=at, to=to,
                                                          reason=reason),
              st.sampled_from(["t", "m", "l", "x", "b", "z"]), small, small, small, small),
).filter(lambda raw: 0 < len(raw.encode()) <= 64)


def parses(data: str) -> bool:
    for factory in FACTORIES:
        try:
            factory.unpack(data)
        except (TypeError, ValueError):
            continue
        return True
    return False


# ------------------------------------------------------------------------------------------ the driver


class Driver:
    def __init__(self, running: RunningApp) -> None:
        self.running, self.emulator = running, running.emulator
        self.ids = itertools.count(40_001)
        self.parked: dict[str, dict[str, Any]] = {}
        self.counts = {"messages": 0, "presses": 0, "examples": 0}

    def newcomer(self) -> dict[str, Any]:
        return user(next(self.ids), "Yara", "en")

    def last_id(self, chat: int) -> int:
        messages = self.emulator.messages(chat)
        return messages[-1]["message_id"] if messages else 0

    def bot_after(self, chat: int, after: int) -> list[dict[str, Any]]:
        return [m for m in self.emulator.messages(chat) if is_bot(m) and m["message_id"] > after]

    async def act(self, who: dict[str, Any], kind: str, value: Any) -> None:
        if kind == "say":
            self.emulator.inject_message(who, value)
        elif kind == "contact":
            self.emulator.inject_message(who, contact={"phone_number": value, "first_name": "Y", "user_id": who["id"]})
        else:
            self.emulator.press(who, who["id"], value)
        await self.running.idle()

    async def park(self, who: dict[str, Any], step: str) -> None:
        for name, (kind, value) in SCRIPT[: STEPS.index(step) + 1]:
            await self.act(who, kind, value)
        state, data = await self.state(who)
        if step == "handed_off":
            assert state is None
        elif step == "summary":
            assert state == "Flow:summary"
        else:
            assert data.get("step") == step, (step, state, data)

    async def parked_at(self, step: str) -> dict[str, Any]:
        if step not in self.parked:
            self.parked[step] = self.newcomer()
            await self.park(self.parked[step], step)
        return self.parked[step]

    async def state(self, who: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        async with self.running.session() as session:
            record = await session.scalar(select(FSMRecord).where(FSMRecord.key.contains(f":{who['id']}:{who['id']}")))
            return (record.state, dict(record.data)) if record else (None, {})

    async def lead_of(self, who: dict[str, Any]) -> tuple[Any, ...] | None:
        async with self.running.session() as session:
            lead = await session.scalar(select(Lead).where(Lead.tg_id == who["id"]))
            return (lead.name, lead.phone, lead.email, lead.answers, lead.stage) if lead else None

    async def dead_letters(self) -> list[DeadLetter]:
        async with self.running.session() as session:
            return list((await session.scalars(select(DeadLetter))).all())

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every business row (the dedupe markers aside)."""
        out = {}
        async with self.running.session() as session:
            for model in (Prospect, Lead, LeadEvent, StageReached, DialogueRun, FSMRecord, OutboxMessage, DeadLetter):
                columns = [c for c in model.__table__.columns if c.name != "updated_at"]
                rows = (await session.execute(select(*columns))).all()
                out[model.__tablename__] = sorted(map(tuple, rows), key=repr)
        return out

    async def press_data(self, who: dict[str, Any], chat: int, data: str) -> dict[str, Any] | None:
        """`who` sends a callback with `data` from the newest bot message with an inline keyboard."""
        messages = [m for m in self.emulator.messages(chat) if is_bot(m)]
        target = next((m for m in reversed(messages) if (m.get("reply_markup") or {}).get("inline_keyboard")),
                      messages[-1])
        query = self.emulator.inject_callback(who, chat, target["message_id"], data)
        await self.running.idle()
        self.counts["presses"] += 1
        return self.emulator.callback_answer(query["callback_query_id"])


@pytest.fixture
async def driver(make_settings, emulator, client, request) -> AsyncIterator[Driver]:
    from bot.app import create_app

    running = RunningApp(await create_app(make_settings(flood_messages=10_000)), emulator)
    await running.start()
    driving = Driver(running)
    yield driving
    await running.stop()
    figure(f"hypothesis {request.node.name.removeprefix('test_')}", **driving.counts)


def answers_kept(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return all(after.get("answers", {}).get(key) == value for key, value in before.get("answers", {}).items())


# ------------------------------------------------------------------------------------------ properties


@EXAMPLES
@given(data=st.data())
async def test_any_message_at_any_step_is_answered_and_loses_nothing(driver, data):
    step = data.draw(st.sampled_from(STEPS), label="step")
    inputs = data.draw(st.lists(messages, min_size=1, max_size=3), label="messages")
    who = driver.newcomer()
    await driver.park(who, step)
    driver.counts["examples"] += 1
    for message in inputs:
        before_state, before = await driver.state(who)
        lead_before = await driver.lead_of(who)
        mine, staff = driver.last_id(who["id"]), driver.last_id(STAFF_CHAT)
        if "contact" in message and "user_id" in message["contact"]:
            message = {"contact": {**message["contact"], "user_id": who["id"]}}
        driver.emulator.inject_message(who, **message)
        await driver.running.idle()
        driver.counts["messages"] += 1
        assert await driver.dead_letters() == [], message
        relayed = [m for m in driver.bot_after(STAFF_CHAT, staff) if "reply_to_message" in m]
        assert driver.bot_after(who["id"], mine) or (step == "handed_off" and relayed), message
        if str(message.get("text", "")).startswith("/"):
            continue  # a command may legitimately restart or cancel the dialogue
        after_state, after = await driver.state(who)
        assert answers_kept(before, after), (message, before, after)
        assert (before_state is None) == (after_state is None), (message, before_state, after_state)
        assert await driver.lead_of(who) == lead_before, message  # a submitted request is not touched


@EXAMPLES
@given(data=st.data())
async def test_garbage_callback_data_is_refused_and_changes_nothing(driver, data):
    step = data.draw(st.sampled_from(STEPS), label="step")
    presses = data.draw(st.lists(garbage.filter(lambda raw: not parses(raw)), min_size=1, max_size=3), label="data")
    who = await driver.parked_at(step)
    driver.counts["examples"] += 1
    for raw in presses:
        before = await driver.snapshot()
        answer = await driver.press_data(who, who["id"], raw)
        assert answer is not None, raw  # refused, but answered at once
        assert await driver.snapshot() == before, raw
        assert await driver.dead_letters() == []


@EXAMPLES
@given(data=st.data())
async def test_forged_well_formed_callback_data_never_breaks_the_dialogue(driver, data):
    """Data that parses (an answer to another step, an out-of-range index, a card button in a private chat,
    a menu item mid-dialogue...): always answered, never a dead letter, earlier answers kept while the
    dialogue goes on. (The erase confirmation, a legitimate action of the prospect, is not generated.)"""
    step = data.draw(st.sampled_from(STEPS), label="step")
    presses = data.draw(st.lists(well_formed, min_size=1, max_size=3), label="data")
    who = driver.newcomer()
    await driver.park(who, step)
    driver.counts["examples"] += 1
    for raw in presses:
        _, before = await driver.state(who)
        rows_before = await driver.snapshot()
        answer = await driver.press_data(who, who["id"], raw)
        assert answer is not None, raw
        assert await driver.dead_letters() == [], raw
        after_state, after = await driver.state(who)
        if after_state is not None and after_state.startswith("Flow:") and before.get("step") and \
                not after.get("editing"):
            assert answers_kept(before, after), (raw, before, after)
        if raw.startswith("L:"):  # a staff button in a private chat: refused
            assert await driver.snapshot() == rows_before, raw


@EXAMPLES
@given(data=st.data())
async def test_random_presses_on_a_lead_card_are_authorised_against_the_database(driver, data):
    """Managers, a staff-chat member who is not a manager and the prospect press random card buttons (and
    garbage) on a real card: every press is answered; only managers change anything, only by an allowed
    move, and each change is recorded with who made it."""
    from funnel import allowed_moves

    funnel = driver.running.app.funnel
    if "card" not in driver.parked:
        driver.parked["card"] = who = driver.newcomer()
        await driver.park(who, "handed_off")
    prospect = driver.parked["card"]
    async with driver.running.session() as session:
        lead = await session.scalar(select(Lead).where(Lead.tg_id == prospect["id"]))
    presser = data.draw(st.sampled_from([user(MANAGERS[0], "Max"), user(MANAGERS[1], "Olga"), user(703, "Eve"),
                                         prospect]), label="presser")
    raw = data.draw(st.one_of(
        st.builds(lambda action, at, to, reason: packed(LeadCb, action=action, lead=lead.id, at=at, to=to,
                                                        reason=reason),
                  st.sampled_from(["t", "m", "l", "x", "b", "z"]), st.integers(-1, 9), st.integers(-1, 9),
                  st.integers(-1, 6)),
        well_formed, garbage), label="data")
    driver.counts["examples"] += 1
    before = await driver.snapshot()
    async with driver.running.session() as session:
        stage_before = (await session.get(Lead, lead.id)).stage
    answer = await driver.press_data(presser, STAFF_CHAT, raw)
    assert answer is not None, raw
    assert await driver.dead_letters() == [], raw
    after = await driver.snapshot()
    if presser["id"] not in MANAGERS:
        changed = {table for table in after if after[table] != before[table]}
        assert changed <= {"outbox"}, (raw, changed)  # at most a refresh of an out-of-date card
        return
    async with driver.running.session() as session:
        now = await session.get(Lead, lead.id)
        moves = (await session.scalars(select(LeadEvent).where(
            LeadEvent.lead_id == lead.id, LeadEvent.kind == "stage", LeadEvent.actor_id.is_not(None)))).all()
    if now.stage != stage_before:
        assert now.stage in {stage.key for stage in allowed_moves(funnel, stage_before)}, raw
        assert (moves[-1].from_stage, moves[-1].to_stage, moves[-1].actor_id) == (
            stage_before, now.stage, presser["id"])
