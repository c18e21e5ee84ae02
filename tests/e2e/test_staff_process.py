"""End to end, the real process: managers work a lead from the staff chat with one tap, and every
press that is not theirs to make is refused with a reason and changes nothing."""
from __future__ import annotations

import signal
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db.models import Lead, LeadEvent
from tests.conftest import ADMIN, MANAGERS, STAFF_CHAT, user
from tests.e2e.test_bot_process import Prospect, ready, wait_for

pytestmark = pytest.mark.e2e
CAROL = user(3001, "Carol", "en")
MARIA = user(MANAGERS[0], "Maria", "en")
STRANGER = user(7999, "Eve", "en")


def rows(tmp_path: Any) -> tuple[Lead, list[LeadEvent]]:
    engine = create_engine(f"sqlite:///{tmp_path}/leadbot.db")
    with Session(engine) as session:
        lead = session.scalars(select(Lead)).one()
        events = list(session.scalars(select(LeadEvent).where(LeadEvent.kind.in_(["stage", "assign"]))
                                      .order_by(LeadEvent.id)).all())
        session.expunge_all()
    engine.dispose()
    return lead, events


async def qualify(carol: Prospect) -> None:
    """Carol goes through the dialogue with answers that qualify her lead."""
    await carol.command("/start")
    await carol.press("I agree")
    await carol.say("Carol King")
    await carol.share_contact("+14155552671")
    await carol.press("Skip")
    for label in ("A custom project", "Over $20,000", "As soon as possible", "Private person"):
        await carol.press(label)
    await carol.press("Skip")
    await carol.press("Confirm")


async def qualified_lead(emulator: Any, client: Any) -> dict[str, Any]:
    await qualify(Prospect(client, CAROL, emulator))
    return await client.wait_for_bot_message(STAFF_CHAT, lambda m: "Carol King" in m.get("text", ""), timeout=20)


async def press(emulator: Any, client: Any, who: dict[str, Any], chat_id: int, message_id: int,
                data: str) -> dict[str, Any]:
    result = await client.press(who, chat_id, message_id, data)
    await wait_for(lambda: emulator.callback_answer(result["callback_query_id"]) is not None)
    return emulator.callback_answer(result["callback_query_id"])


def data_of(card: dict[str, Any], label_start: str) -> str:
    for row in card["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"].startswith(label_start):
                return button["callback_data"]
    raise AssertionError(f"no button {label_start!r} on the card")


async def test_a_managers_press_edits_the_card_and_forged_presses_change_nothing(
        emulator, client, bot_process, tmp_path):
    process = bot_process()
    await ready(emulator, process)
    card = await qualified_lead(emulator, client)
    take, move = data_of(card, "🙋"), data_of(card, "➡️")

    # a stranger in the staff chat (not a manager), a forged press from a private chat: refused
    await client.set_member(STAFF_CHAT, STRANGER["id"], "member")
    refusal = await press(emulator, client, STRANGER, STAFF_CHAT, card["message_id"], take)
    assert refusal["show_alert"] and "Only managers" in refusal["text"]
    forged_message = emulator.inject_message(MARIA, "hi")  # a message Maria can press under in private
    await wait_for(lambda: emulator.pending_count() == 0)
    refusal = await press(emulator, client, MARIA, MARIA["id"], forged_message["message_id"], move)
    assert "only in the staff chat" in refusal["text"]
    lead, events = rows(tmp_path)
    assert lead.manager_id is None and lead.stage == "qualified" and [e.kind for e in events] == ["stage"]

    # the manager takes the lead and moves it: the card is edited in place
    answer = await press(emulator, client, MARIA, STAFF_CHAT, card["message_id"], take)
    assert "yours" in answer["text"]
    await client.wait_for_bot_message(STAFF_CHAT, lambda m: m["message_id"] == card["message_id"]
                                      and "Maria" in m.get("text", ""), timeout=20)
    answer = await press(emulator, client, MARIA, STAFF_CHAT, card["message_id"], move)
    assert "Moved to" in answer["text"]
    edited = await client.wait_for_bot_message(
        STAFF_CHAT, lambda m: m["message_id"] == card["message_id"] and "Contacted" in m.get("text", ""),
        timeout=20)
    assert len(await client.bot_messages(STAFF_CHAT)) == 1  # one card, edited, never re-posted
    lead, events = rows(tmp_path)
    assert lead.stage == "contacted" and lead.manager_id == MARIA["id"]
    assert [(e.kind, e.to_stage, e.actor_id) for e in events][-2:] == [
        ("assign", None, MARIA["id"]), ("stage", "contacted", MARIA["id"])]

    # the old keyboard (taken before the move) is stale now: refused with who moved it, nothing changes
    stale = await press(emulator, client, MARIA, STAFF_CHAT, card["message_id"], move)
    assert stale["text"] == "Already moved to “Contacted” by Maria."
    assert rows(tmp_path)[0].stage == "contacted"
    assert "➡️" in str(edited["reply_markup"])
    assert await process.kill(signal.SIGTERM) == 0


async def test_the_bot_removed_from_the_staff_group_tells_the_admins_and_the_cards_wait(
        emulator, client, bot_process, tmp_path):
    """The real poller asks for my_chat_member: removed from the staff group, the bot warns in its log and
    tells the admin in private (in their language); a card queued meanwhile waits and is posted as soon
    as the bot is added back."""
    process = bot_process()
    await ready(emulator, process)
    admin = Prospect(client, user(ADMIN, "Оксана", "uk"), emulator)
    await admin.command("/help")  # the admin has written to the bot: their chat and language are known

    await client.remove_bot(STAFF_CHAT, by=MARIA["id"])
    told = await client.wait_for_bot_message(ADMIN, lambda m: "Бота видалили з групи" in m.get("text", ""),
                                             timeout=20)
    assert "чекають у черзі" in told["text"]
    await wait_for(lambda: "removed from the staff chat" in process.output())

    await qualify(Prospect(client, CAROL, emulator))  # a lead qualifies while the bot is out: its card waits
    await wait_for(lambda: any(c["status"] == 403 for c in emulator.calls(method="sendMessage")
                               if c["params"].get("chat_id") == STAFF_CHAT))
    assert not any("Carol King" in m.get("text", "") for m in await client.bot_messages(STAFF_CHAT))

    await client.remove_bot(STAFF_CHAT, removed=False, by=MARIA["id"])
    await client.wait_for_bot_message(ADMIN, lambda m: "Бот знову в групі" in m.get("text", ""), timeout=20)
    await client.wait_for_bot_message(STAFF_CHAT, lambda m: "Carol King" in m.get("text", ""), timeout=10)
