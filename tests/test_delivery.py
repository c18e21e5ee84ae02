"""The outbox delivery worker against the real Bot API emulator over HTTP.

Every test drives the worker with `run_once`/`flush`. Most use the real clock with tiny pacing limits and
no backoff (nothing waits); the pacing and flood-wait tests share a fake clock between the worker and
the emulator (the emulator's rate limits read `emulator.clock`), so no test depends on wall-clock time.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Router
from sqlalchemy import select

from bot.db.models import KeyValue, Lead, LeadEvent, OutboxMessage, Prospect, utcnow
from bot.delivery import NO_STAFF_ERROR, DeliveryWorker, make_clock
from bot.emulator.client import EmulatorClient
from bot.outbox import enqueue_card, enqueue_card_edit, enqueue_document, enqueue_send
from bot.roles import StaffChat
from bot.services import reach

TOKEN = "123456:" + "A" * 35
STAFF = -100500
FAST = {"group_per_minute": 100_000, "chat_per_second": 100_000.0, "global_per_second": 100_000.0,
        "backoff_base": 0.0}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    from bot.emulator import run_emulator

    async with run_emulator() as emulator:
        yield emulator


@pytest.fixture
async def ec(emu) -> AsyncIterator[EmulatorClient]:
    async with EmulatorClient(emu.base_url) as client:
        await client.create_chat(STAFF, type="group", title="Staff")
        yield client


def make_settings(tmp_path: Path, emu: Any, **extra: Any) -> Any:
    from bot.settings import Settings

    values: dict[str, Any] = {
        "bot_token": TOKEN, "database_url": f"sqlite+aiosqlite:///{tmp_path}/t.db", "staff_chat_id": STAFF,
        "telegram_api_url": emu.base_url, "digest": "off",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


async def build_app(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import handlers
    from bot.app import create_app

    # the worker needs no handlers; keep these tests independent of the feature routers
    monkeypatch.setattr(handlers, "setup_routers", lambda: Router(name="empty"))
    return await create_app(settings, with_delivery=False)


@pytest.fixture
async def app(tmp_path, emu, ec, monkeypatch) -> AsyncIterator[Any]:
    application = await build_app(make_settings(tmp_path, emu), monkeypatch)
    yield application
    await application.close()


class CallLog:
    """Records (clock time, method, chat_id) of every Bot API request the worker makes."""

    def __init__(self, app: Any, clock: Any) -> None:
        self.calls: list[tuple[float, str, Any]] = []
        self.clock = clock
        app.bot.session.middleware(self)

    async def __call__(self, make_request: Any, bot: Any, method: Any) -> Any:
        self.calls.append((self.clock(), type(method).__name__, getattr(method, "chat_id", None)))
        return await make_request(bot, method)


async def add_lead(app: Any, *, name: str = "Ann", tg_id: int | None = None, card: bool = False) -> int:
    async with app.session_factory() as session, session.begin():
        lead = Lead(stage="qualified", name=name, source="direct", tg_id=tg_id, handed_off_at=utcnow(),
                    handoff_reason="qualified", answers={}, signals=[], breakdown=[])
        session.add(lead)
        await session.flush()
        if card:
            enqueue_card(session, lead.id)
        return lead.id


async def enqueue(app: Any, fn: Any, *args: Any, **kwargs: Any) -> int:
    async with app.session_factory() as session, session.begin():
        row = fn(session, *args, **kwargs)
        await session.flush()
        return row.id


async def rows(app: Any) -> dict[int, OutboxMessage]:
    async with app.session_factory() as session:
        return {row.id: row for row in (await session.scalars(select(OutboxMessage))).all()}


async def lead_row(app: Any, lead_id: int) -> Lead:
    async with app.session_factory() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("text", "") for m in messages]


def card_of(message: dict[str, Any]) -> int | None:
    """The lead id a card message shows in its title."""
    found = re.search(r"#\D{0,3}?(\d+)", message.get("text", ""))
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------------------------------------- basics


async def test_send_rows_arrive_in_order_per_chat(app, ec, emu):
    await ec.create_chat(501, type="private", title="Bob")
    for i in range(5):
        await enqueue(app, enqueue_send, None, f"staff {i}")
        await enqueue(app, enqueue_send, 501, f"private {i}")
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    assert texts(await ec.bot_messages(STAFF)) == [f"staff {i}" for i in range(5)]
    assert texts(await ec.bot_messages(501)) == [f"private {i}" for i in range(5)]
    assert worker.sent == 10 and worker.dead == 0 and worker.retried == 0
    assert all(r.status == "sent" and r.message_id for r in (await rows(app)).values())
    assert await worker.run_once() == 0


async def test_card_post_and_document(app, ec, emu, tmp_path):
    lead_id = await add_lead(app, name="Ann <b>", card=True)
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    doc_id = await enqueue(app, enqueue_document, None, str(path), caption="report", filename="report.csv")
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    messages = await ec.bot_messages(STAFF)
    assert len(messages) == 2
    card, document = messages
    assert card_of(card) == lead_id  # the lead id makes a (crash) duplicate recognisable
    assert "Ann <b>" in card["text"]  # escaped on the way in, shown as text
    assert card.get("reply_markup", {}).get("inline_keyboard")
    lead = await lead_row(app, lead_id)
    assert (lead.card_chat_id, lead.card_message_id) == (STAFF, card["message_id"])
    assert (await rows(app))[1].message_id == card["message_id"]
    assert document["document"]["file_name"] == "report.csv" and document["caption"] == "report"
    assert await ec.file_bytes(document["document"]["file_id"]) == b"a,b\n1,2\n"
    assert (await rows(app))[doc_id].status == "sent"


async def test_missing_file_and_bad_request_are_dead(app, ec, emu):
    missing = await enqueue(app, enqueue_document, None, "/nonexistent/file.pdf")
    bad = await enqueue(app, enqueue_send, None, "<b>unclosed")  # HTML parse error: 400
    good = await enqueue(app, enqueue_send, None, "fine")
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    state = await rows(app)
    assert state[missing].status == "dead" and "file not found" in state[missing].error
    assert state[bad].status == "dead" and "Bad Request" in state[bad].error
    assert state[good].status == "sent"
    assert worker.dead == 2 and texts(await ec.bot_messages(STAFF)) == ["fine"]


async def test_no_staff_chat_kills_card_rows(tmp_path, emu, ec, monkeypatch, caplog):
    application = await build_app(make_settings(tmp_path, emu, staff_chat_id=None), monkeypatch)
    try:
        await add_lead(application, card=True)
        await add_lead(application, card=True)
        await ec.create_chat(502, type="private", title="Eve")
        other = await enqueue(application, enqueue_send, 502, "still delivered")
        worker = DeliveryWorker(application, **FAST)
        with caplog.at_level("ERROR", logger="bot.delivery"):
            assert await worker.flush(timeout=20)
        state = await rows(application)
        dead = [r for r in state.values() if r.kind == "card"]
        assert len(dead) == 2 and all(r.status == "dead" and r.error == NO_STAFF_ERROR for r in dead)
        assert "STAFF_CHAT_ID" in NO_STAFF_ERROR
        assert state[other].status == "sent"
        assert sum("STAFF_CHAT_ID is not set" in r.getMessage() for r in caplog.records) == 1  # logged once
    finally:
        await application.close()


# ---------------------------------------------------------------------------------------------- pacing


async def test_thirty_cards_to_a_group_are_paced_under_telegrams_limit(app, ec, emu):
    """The real limits (20 per rolling minute in a group, 1/s per chat) on a fake clock shared with the
    emulator: the worker never provokes a 429 and every card arrives, in order."""
    clock, sleep = make_clock()
    emu.clock = clock
    assert emu.limits.group_per_minute == 20
    lead_ids = [await add_lead(app, name=f"Lead {i}", card=True) for i in range(30)]
    worker = DeliveryWorker(app, clock=clock, sleep=sleep)  # settings: 20/min, 1/s, 30/s
    assert (worker.group_per_minute, worker.chat_per_second) == (20, 1.0)
    log = CallLog(app, clock)
    start = clock()
    assert await worker.flush(timeout=600)

    assert worker.rate_limited == 0 and worker.sent == 30 and worker.dead == 0
    assert not [c for c in await ec.calls("sendMessage") if c["status"] == 429]
    cards = await ec.bot_messages(STAFF)
    assert [card_of(m) for m in cards] == lead_ids
    times = [t for t, method, _ in log.calls if method == "SendMessage"]
    assert len(times) == 30
    for i, t in enumerate(times):  # never more than 20 in any 60 s, never two within a second
        assert sum(1 for u in times if t - 60 < u <= t) <= 20, i
        if i:
            assert t - times[i - 1] >= 1.0
    assert times[20] - times[0] >= 60  # the 21st waited for the window
    assert clock() - start < 120  # ... but not much longer than needed


async def test_edits_do_not_count_towards_the_group_minute(app, ec, emu):
    clock, sleep = make_clock()
    emu.clock = clock
    lead_id = await add_lead(app, card=True)
    worker = DeliveryWorker(app, clock=clock, sleep=sleep)
    assert await worker.flush(timeout=60)
    for i in range(25):  # 25 edits, each one a real change
        async with app.session_factory() as session, session.begin():
            lead = await session.get(Lead, lead_id)
            lead.name = f"Ann {i}"
            enqueue_card_edit(session, lead_id)
        assert await worker.flush(timeout=60)
    for i in range(19):
        await enqueue(app, enqueue_send, None, f"note {i}")
    start = clock()
    assert await worker.flush(timeout=600)
    assert worker.rate_limited == 0
    assert clock() - start < 30  # the edits did not use up the 20/min window
    assert len(await ec.calls("editMessageText")) == 25


# ---------------------------------------------------------------------------------------------- failures


async def test_flood_wait_pauses_all_sending_and_keeps_order(app, ec, emu):
    clock, sleep = make_clock()
    emu.clock = clock
    await ec.create_chat(503, type="private", title="Pat")
    for i in range(8):
        await enqueue(app, enqueue_send, None, f"s{i}")
        await enqueue(app, enqueue_send, 503, f"p{i}")
    await ec.add_faults({"method": "sendMessage", "chat_id": STAFF, "error_code": 429, "retry_after": 7,
                         "count": 3})
    worker = DeliveryWorker(app, clock=clock, sleep=sleep)
    log = CallLog(app, clock)
    assert await worker.flush(timeout=600)

    assert texts(await ec.bot_messages(STAFF)) == [f"s{i}" for i in range(8)]
    assert texts(await ec.bot_messages(503)) == [f"p{i}" for i in range(8)]
    assert worker.rate_limited == 3 and worker.retried == 0 and worker.dead == 0 and worker.sent == 16
    limited = [c for c in await ec.calls("sendMessage") if c["status"] == 429]
    assert len(limited) == 3
    # every 429 was answered by a bot-wide silence of retry_after seconds (worker clock)
    flood_times = []
    sends = [t for t, method, _ in log.calls if method == "SendMessage"]
    statuses = [c["status"] for c in await ec.calls("sendMessage")]
    assert len(sends) == len(statuses)
    for t, status in zip(sends, statuses, strict=True):
        if status == 429:
            flood_times.append(t)
    for t in flood_times:
        assert not [u for u in sends if t < u < t + 7]
    assert all(r.attempts == 0 for r in (await rows(app)).values())  # a flood wait is not a failure


async def test_server_errors_and_dropped_connections_are_retried_once_delivered(app, ec, emu):
    await ec.create_chat(504, type="private", title="Kim")
    await ec.add_faults(
        {"method": "sendMessage", "chat_id": STAFF, "error_code": 500, "count": 2},
        {"method": "sendMessage", "chat_id": 504, "drop_connection": True, "count": 1},
        {"method": "sendMessage", "chat_id": 504, "error_code": 502, "count": 1},
    )
    for i in range(3):
        await enqueue(app, enqueue_send, None, f"s{i}")
        await enqueue(app, enqueue_send, 504, f"p{i}")
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=30)
    assert texts(await ec.bot_messages(STAFF)) == ["s0", "s1", "s2"]
    assert texts(await ec.bot_messages(504)) == ["p0", "p1", "p2"]
    assert worker.retried == 4 and worker.sent == 6 and worker.dead == 0
    state = await rows(app)
    first_staff, first_private = state[1], state[2]
    assert first_staff.attempts == 2 and first_private.attempts == 2
    assert all(r.status == "sent" for r in state.values())


async def test_retry_backoff_blocks_the_chat_but_not_others(app, ec, emu):
    await ec.create_chat(505, type="private", title="Lu")
    await ec.add_faults({"method": "sendMessage", "chat_id": STAFF, "error_code": 500, "count": 1})
    await enqueue(app, enqueue_send, None, "s0")
    await enqueue(app, enqueue_send, None, "s1")
    await enqueue(app, enqueue_send, 505, "p0")
    clock, sleep = make_clock()  # after the rows were written: they are due "now"
    worker = DeliveryWorker(app, clock=clock, sleep=sleep, backoff_base=10.0, jitter=lambda: 1.0,
                            chat_per_second=1000.0)
    await worker.run_once()
    state = await rows(app)
    assert state[1].status == "pending" and state[1].attempts == 1 and "Internal Server Error" in state[1].error
    assert state[2].status == "pending"  # waits behind s0
    assert state[3].status == "sent"  # another chat keeps going
    assert await worker.run_once() == 0  # nothing due: s0 waits 10 s, s1 waits for s0
    assert worker.next_ready == pytest.approx(state[1].next_attempt_at.timestamp())
    assert await worker.flush(timeout=60)
    assert texts(await ec.bot_messages(STAFF)) == ["s0", "s1"]


async def test_gives_up_after_max_attempts(app, ec, emu):
    await ec.add_faults({"method": "sendMessage", "chat_id": STAFF, "error_code": 500, "count": 0})
    row_id = await enqueue(app, enqueue_send, None, "doomed")
    worker = DeliveryWorker(app, **FAST, max_attempts=3)
    assert await worker.flush(timeout=30)
    row = (await rows(app))[row_id]
    assert row.status == "dead" and row.attempts == 3 and "Internal Server Error" in row.error
    assert worker.dead == 1 and worker.retried == 2


async def test_removed_from_the_staff_group_the_rows_wait_until_it_is_back(app, ec, emu):
    """A 403 in the staff group is retried with backoff however long it lasts, never dead: the admins
    were told that the leads wait in the queue until the bot is added back."""
    clock, sleep = make_clock()
    await ec.remove_bot(STAFF)
    lead_id = await add_lead(app, card=True)
    note = await enqueue(app, enqueue_send, None, "staff note")
    worker = DeliveryWorker(app, **{**FAST, "backoff_base": 1.0}, backoff_cap=60.0, max_attempts=3,
                            clock=clock, sleep=sleep)
    assert not await worker.flush(timeout=900)  # a quarter of an hour: still waiting
    state = await rows(app)
    card = next(row for row in state.values() if row.kind == "card")
    assert card.status == "pending" and card.attempts > 3 and "kicked" in card.error
    assert state[note].status == "pending" and state[note].attempts == 0  # behind the card, FIFO
    assert worker.dead == 0

    await ec.remove_bot(STAFF, removed=False)
    async with app.session_factory() as session, session.begin():  # as the membership handler does
        await reach.staff_chat_back(session, app.translator, [], STAFF)
    assert await worker.run_once() == 1  # the card is due at once, not at its backed-off retry time
    assert await worker.flush(timeout=5)
    assert [card_of(m) for m in await ec.bot_messages(STAFF)] == [lead_id, None]  # the card, then the note
    assert (await rows(app))[note].status == "sent" and worker.dead == 0


async def test_blocked_prospect_becomes_unreachable(app, ec, emu):
    user = 5001
    await ec.create_chat(user, type="private", title="Zed")
    async with app.session_factory() as session, session.begin():
        prospect = Prospect(tg_id=user, chat_id=user, first_name="Zed")
        session.add(prospect)
        await session.flush()
        prospect_id = prospect.id
    lead_id = await add_lead(app, tg_id=user, card=True)
    async with app.session_factory() as session, session.begin():
        (await session.get(Lead, lead_id)).prospect_id = prospect_id
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)  # the card is posted
    card = (await ec.bot_messages(STAFF))[0]

    await ec.block(user)
    first = await enqueue(app, enqueue_send, user, "one", lead_id=lead_id)
    later = [await enqueue(app, enqueue_send, user, f"later {i}", lead_id=lead_id) for i in range(3)]
    staff_note = await enqueue(app, enqueue_send, None, "staff note")
    assert await worker.flush(timeout=20)

    state = await rows(app)
    assert state[first].status == "dead" and "blocked" in state[first].error
    assert all(state[i].status == "dead" and state[i].error == "prospect blocked the bot" for i in later)
    assert state[staff_note].status == "sent"
    assert len([c for c in await ec.calls("sendMessage") if c["params"]["chat_id"] == user]) == 1
    async with app.session_factory() as session:
        assert (await session.get(Prospect, prospect_id)).unreachable is True
        events = (await session.scalars(select(LeadEvent).where(LeadEvent.lead_id == lead_id,
                                                                 LeadEvent.kind == "unreachable"))).all()
        assert len(events) == 1
    # the managers see it: the card was re-rendered (its history shows the new event)
    edits = [c for c in await ec.calls("editMessageText") if c["status"] == 200]
    assert len(edits) == 1 and edits[0]["params"]["message_id"] == card["message_id"]
    assert worker.dead == 4


async def test_migrated_staff_chat_is_followed(app, ec, emu, tmp_path):
    new_id = -100777
    first_lead = await add_lead(app, card=True)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    assert (await lead_row(app, first_lead)).card_chat_id == STAFF

    await ec.migrate(STAFF, new_id)
    second_lead = await add_lead(app, card=True)
    await enqueue(app, enqueue_send, STAFF, "explicit staff id")
    async with app.session_factory() as session, session.begin():
        (await session.get(Lead, first_lead)).name = "Renamed"
        enqueue_card_edit(session, first_lead)
    assert await worker.flush(timeout=20)

    assert app.staff.id == new_id
    async with app.session_factory() as session:
        stored = await session.get(KeyValue, StaffChat.KEY)
        assert stored is not None and stored.value == {"from": STAFF, "to": new_id}
    reloaded = StaffChat(STAFF)
    await reloaded.load(app.session_factory)
    assert reloaded.id == new_id
    messages = await ec.bot_messages(new_id)
    assert card_of(messages[0]) == second_lead and messages[1]["text"] == "explicit staff id"
    # the old card could not be edited in the new chat: a fresh card was posted there
    assert card_of(messages[2]) == first_lead and "Renamed" in messages[2]["text"]
    assert (await lead_row(app, first_lead)).card_chat_id == new_id
    assert (await lead_row(app, second_lead)).card_chat_id == new_id
    assert all(r.status == "sent" for r in (await rows(app)).values())
    assert worker.dead == 0 and worker.retried == 0

    third_lead = await add_lead(app, card=True)
    assert await worker.flush(timeout=20)
    assert card_of((await ec.bot_messages(new_id))[-1]) == third_lead
    assert len(await ec.bot_messages(STAFF)) == 1  # only the first card, posted before the migration


# ---------------------------------------------------------------------------------------------- cards


async def test_not_modified_edit_is_success(app, ec, emu):
    lead_id = await add_lead(app, card=True)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    edit_id = await enqueue(app, enqueue_card_edit, lead_id)
    assert await worker.flush(timeout=20)
    calls = await ec.calls("editMessageText")
    assert len(calls) == 1 and calls[0]["status"] == 400 and "not modified" in calls[0]["response"]["description"]
    row = (await rows(app))[edit_id]
    assert row.status == "sent" and row.error is None
    assert worker.dead == 0 and worker.sent == 2


async def test_pending_edits_collapse_into_one(app, ec, emu):
    lead_id = await add_lead(app, card=True)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    for i in range(5):
        async with app.session_factory() as session, session.begin():
            (await session.get(Lead, lead_id)).name = f"Name {i}"
            enqueue_card_edit(session, lead_id)
    assert await worker.flush(timeout=20)
    calls = await ec.calls("editMessageText")
    assert len(calls) == 1 and calls[0]["status"] == 200
    assert "Name 4" in (await ec.bot_messages(STAFF))[0]["text"]
    edits = [r for r in (await rows(app)).values() if r.kind == "card_edit"]
    assert len(edits) == 5 and all(r.status == "sent" for r in edits)
    assert worker.collapsed == 4


async def test_edit_before_the_card_is_covered_by_the_card_post(app, ec, emu):
    lead_id = await add_lead(app, card=True)
    async with app.session_factory() as session, session.begin():
        (await session.get(Lead, lead_id)).name = "Latest"
        enqueue_card_edit(session, lead_id)
        enqueue_card_edit(session, lead_id)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    assert await ec.calls("editMessageText") == []
    messages = await ec.bot_messages(STAFF)
    assert len(messages) == 1 and "Latest" in messages[0]["text"]
    assert all(r.status == "sent" for r in (await rows(app)).values())


async def test_deleted_card_is_posted_again(app, ec, emu):
    lead_id = await add_lead(app, card=True)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    old = await lead_row(app, lead_id)
    await app.bot.delete_message(STAFF, old.card_message_id)
    async with app.session_factory() as session, session.begin():
        (await session.get(Lead, lead_id)).name = "After delete"
        enqueue_card_edit(session, lead_id)
    assert await worker.flush(timeout=20)
    messages = await ec.bot_messages(STAFF)
    assert len(messages) == 1 and "After delete" in messages[0]["text"]
    new = await lead_row(app, lead_id)
    assert new.card_message_id == messages[0]["message_id"] != old.card_message_id
    assert worker.dead == 0


async def test_reply_to_card_waits_for_the_card_and_threads(app, ec, emu):
    lead_id = await add_lead(app)
    # the reply is queued BEFORE the card: the card is posted first, then the reply under it
    reply_id = await enqueue(app, enqueue_send, None, "the prospect wrote again", lead_id=lead_id,
                             reply_to_card=True)
    card_id = await enqueue(app, enqueue_card, lead_id)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    card, reply = await ec.bot_messages(STAFF)
    assert card_of(card) == lead_id
    assert reply["text"] == "the prospect wrote again"
    assert reply["reply_to_message"]["message_id"] == card["message_id"]
    state = await rows(app)
    assert state[card_id].message_id == card["message_id"] and state[reply_id].status == "sent"

    await enqueue(app, enqueue_send, None, "and again", lead_id=lead_id, reply_to_card=True)
    assert await worker.flush(timeout=20)
    last = (await ec.bot_messages(STAFF))[-1]
    assert last["reply_to_message"]["message_id"] == card["message_id"]


async def test_reply_to_card_without_any_card_is_sent_unthreaded(app, ec, emu):
    lead_id = await add_lead(app)
    await enqueue(app, enqueue_send, None, "no card", lead_id=lead_id, reply_to_card=True)
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    (message,) = await ec.bot_messages(STAFF)
    assert message["text"] == "no card" and "reply_to_message" not in message


async def test_a_failing_render_only_delays_its_own_row(app, ec, emu):
    from bot.cards import render_card

    failures = []

    async def flaky(session: Any, lead: Lead, **kwargs: Any) -> Any:
        if not failures:
            failures.append(lead.id)
            raise RuntimeError("renderer bug")
        return await render_card(session, lead, **kwargs)

    await ec.create_chat(506, type="private", title="Max")
    lead_id = await add_lead(app, card=True)
    other = await enqueue(app, enqueue_send, 506, "unaffected")
    worker = DeliveryWorker(app, **FAST, render=flaky)
    await worker.run_once()
    state = await rows(app)
    assert state[1].status == "pending" and state[1].attempts == 1 and "renderer bug" in state[1].error
    assert state[other].status == "sent"
    assert await worker.flush(timeout=20)
    assert card_of((await ec.bot_messages(STAFF))[0]) == lead_id and failures == [lead_id]


async def test_lead_services_end_to_end(app, ec, emu):
    """In process: the lead services write the outbox; the worker posts, edits and notifies."""
    from bot.services.leads import Actor, assign, handoff, move_stage

    user = 5002
    await ec.create_chat(user, type="private", title="Ivy")
    async with app.session_factory() as session, session.begin():
        prospect = Prospect(tg_id=user, chat_id=user, first_name="Ivy")
        session.add(prospect)
        await session.flush()
        lead = Lead(prospect_id=prospect.id, stage="qualified", name="Ivy", tg_id=user, source="direct",
                    answers={}, signals=[], breakdown=[])
        session.add(lead)
        await session.flush()
        lead_id = lead.id
        assert await handoff(session, lead, "manager")
        enqueue_send(session, None, "a question from Ivy", lead_id=lead_id, reply_to_card=True)
    async with app.session_factory() as session, session.begin():
        manager = Actor(701, "Max")
        assert (await assign(session, lead_id, manager)).ok
        assert (await move_stage(session, app.funnel, lead_id, expected="qualified", to="contacted",
                                 actor=manager)).ok
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)

    card, question = await ec.bot_messages(STAFF)
    assert card_of(card) == lead_id and question["reply_to_message"]["message_id"] == card["message_id"]
    # the edits were queued while the card was not posted yet: the card, rendered at send time, covers them
    assert "Max" in card["text"] and await ec.calls("editMessageText") == []
    async with app.session_factory() as session, session.begin():
        assert (await move_stage(session, app.funnel, lead_id, expected="contacted", to="proposal",
                                 actor=manager)).ok
    assert await worker.flush(timeout=20)
    assert len([c for c in await ec.calls("editMessageText") if c["status"] == 200]) == 1
    assert len(await ec.bot_messages(user)) == 2  # the stage notifications to the prospect
    assert all(r.status == "sent" for r in (await rows(app)).values())


# ---------------------------------------------------------------------------------------------- lifecycle


async def test_row_left_sending_by_a_crash_is_retried_on_start(app, ec, emu, caplog):
    lead_id = await add_lead(app)
    async with app.session_factory() as session, session.begin():
        session.add(OutboxMessage(kind="card", purpose="card", chat_id=None, lead_id=lead_id, payload={},
                                  status="sending"))
        session.add(OutboxMessage(kind="send", chat_id=None, payload={"text": "after"}, status="pending"))
    worker = DeliveryWorker(app, **FAST)
    with caplog.at_level("WARNING", logger="bot.delivery"):
        assert await worker.flush(timeout=20)
    messages = await ec.bot_messages(STAFF)
    assert card_of(messages[0]) == lead_id and messages[1]["text"] == "after"
    assert (await lead_row(app, lead_id)).card_message_id == messages[0]["message_id"]
    assert any("being sent when the bot stopped" in r.getMessage() for r in caplog.records)


async def test_recovery_seeds_the_group_window_from_recent_sends(app, ec, emu):
    async with app.session_factory() as session, session.begin():
        for i in range(20):  # 20 sends in the last minute, by a previous run of the bot
            session.add(OutboxMessage(kind="send", chat_id=None, payload={"text": f"old {i}"}, status="sent",
                                      sent_at=utcnow(), message_id=i + 1))
    await enqueue(app, enqueue_send, None, "new")
    clock, sleep = make_clock()
    emu.clock = clock
    worker = DeliveryWorker(app, clock=clock, sleep=sleep)
    start = clock()
    await worker.run_once()
    assert texts(await ec.bot_messages(STAFF)) == []  # the window is full
    assert worker.next_ready is not None and worker.next_ready - start > 50
    assert await worker.flush(timeout=120)
    assert texts(await ec.bot_messages(STAFF)) == ["new"]


async def test_result_written_later_when_the_database_was_away(app, ec, emu):
    first = await enqueue(app, enqueue_send, None, "first")
    second = await enqueue(app, enqueue_send, None, "second")
    worker = DeliveryWorker(app, **FAST)
    real = worker._succeeded
    failed: list[int] = []

    async def flaky(job: Any, message_id: Any) -> None:
        if not failed:
            failed.append(job.row_id)
            raise ConnectionError("database is away")
        await real(job, message_id)

    worker._succeeded = flaky  # type: ignore[method-assign]
    await worker.run_once()
    state = await rows(app)
    assert state[first].status == "sending" and state[second].status == "pending"  # the chat waits
    assert texts(await ec.bot_messages(STAFF)) == ["first"]
    assert await worker.flush(timeout=20)
    state = await rows(app)
    assert state[first].status == "sent" and state[first].message_id is not None
    assert texts(await ec.bot_messages(STAFF)) == ["first", "second"]  # recorded, not sent twice


async def test_start_wake_stop(app, ec, emu):
    worker = DeliveryWorker(app, **FAST)
    worker.start()
    try:
        row_id = await enqueue(app, enqueue_send, None, "hello")
        worker.wake()
        for _ in range(2000):  # liveness only: usually done after a few iterations
            if (await rows(app))[row_id].status == "sent":
                break
            await asyncio.sleep(0.01)
        assert (await rows(app))[row_id].status == "sent"
    finally:
        await worker.stop()
    assert worker._task is None
    await enqueue(app, enqueue_send, None, "after stop")
    await asyncio.sleep(0)
    assert texts(await ec.bot_messages(STAFF)) == ["hello"]
