"""The staff chat: card buttons, the lost-reason picker, races, /note, /amount, /lead, /mine and the
relay of a manager's reply to the prospect - every press authorised before anything changes."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.db.models import Lead, LeadEvent, OutboxMessage, Prospect
from bot.services import staff as svc
from bot.services.leads import Actor
from handlers.callbacks import LeadCb
from tests.flow.conftest import MANAGERS, NOT_A_MEMBER, OUTSIDER, STAFF_CHAT, person

PROSPECT = person(5001, "Ann", username="ann")
MAX = person(MANAGERS[0], "Max")
OLGA = person(MANAGERS[1], "Olga")


async def lead_with_card(feed, user=PROSPECT, answers=None, name="Ann") -> tuple[int, int]:
    lead_id = await feed.make_lead(user, answers, name=name)
    return lead_id, await feed.post_card(lead_id)


async def get_lead(feed, lead_id: int) -> Lead:
    async with feed.session() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead


async def set_stage(feed, lead_id: int, stage: str) -> None:
    async with feed.session() as session:
        lead = await session.get(Lead, lead_id)
        lead.stage = stage
        await session.commit()


async def events(feed, lead_id: int, kind: str) -> list[LeadEvent]:
    return await feed.rows(LeadEvent, LeadEvent.lead_id == lead_id, LeadEvent.kind == kind)


async def outbox(feed, lead_id: int, kind: str) -> list[OutboxMessage]:
    return await feed.rows(OutboxMessage, OutboxMessage.lead_id == lead_id, OutboxMessage.kind == kind)


def cb(funnel, action: str, lead_id: int, at: str, to: str | None = None, reason: int = -1) -> str:
    return LeadCb(action=action, lead=lead_id, at=funnel.stage_index(at),
                  to=funnel.stage_index(to) if to else -1, reason=reason).pack()


# ---------------------------------------------------------------------------- Take


async def test_take(app, feed):
    lead_id, card = await lead_with_card(feed)
    edits_before = len(await outbox(feed, lead_id, "card_edit"))
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "t", lead_id, "qualified"))
    assert answer == {"text": "✅ The lead is yours.", "show_alert": False, "url": None, "cache_time": 0}
    lead = await get_lead(feed, lead_id)
    assert (lead.manager_id, lead.manager_name) == (MAX["id"], "Max")
    assert [e.actor_id for e in await events(feed, lead_id, "assign")] == [MAX["id"]]
    assert len(await outbox(feed, lead_id, "card_edit")) == edits_before + 1

    answer = await feed.press(OLGA, STAFF_CHAT, card, cb(app.funnel, "t", lead_id, "qualified"))
    assert answer["show_alert"] and answer["text"] == "Already taken by Max."
    assert (await get_lead(feed, lead_id)).manager_id == MAX["id"]
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "t", lead_id, "qualified"))
    assert answer["text"] == "The lead is already yours."


# ---------------------------------------------------------------------------- moves


MOVES = [(source, target) for source in ("new", "qualified", "contacted", "proposal", "negotiation", "nurture")
         for target in ("qualified", "contacted", "proposal", "negotiation", "won", "nurture")]


@pytest.mark.parametrize("source, target", MOVES)
async def test_every_allowed_move_and_no_other(app, feed, source, target):
    lead_id, card = await lead_with_card(feed)
    await set_stage(feed, lead_id, source)
    edits_before = len(await outbox(feed, lead_id, "card_edit"))
    answer = await feed.press(OLGA, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, source, target))
    lead = await get_lead(feed, lead_id)
    title = app.funnel.label(app.funnel.stage(target).title, "en")
    if target in app.funnel.stage(source).to:
        assert answer == {"text": f"Moved to “{title}”.", "show_alert": False, "url": None, "cache_time": 0}
        assert lead.stage == target
        moves = [e for e in await events(feed, lead_id, "stage") if e.actor_id == OLGA["id"]]
        assert [(e.from_stage, e.to_stage, e.actor_name) for e in moves] == [(source, target, "Olga")]
        assert len(await outbox(feed, lead_id, "card_edit")) == edits_before + 1
        if target == "won":
            assert lead.outcome == "won" and lead.closed_at is not None
        notify = app.funnel.stage(target).notify_prospect
        sends = await feed.rows(OutboxMessage, OutboxMessage.purpose == "stage_notify")
        assert len(sends) == (1 if notify else 0)
    else:
        assert answer["show_alert"] and answer["text"].startswith("Not allowed")
        assert lead.stage == source
        assert len(await outbox(feed, lead_id, "card_edit")) == edits_before


async def test_move_to_lost_without_a_reason_is_refused(app, feed):
    lead_id, card = await lead_with_card(feed)
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, "qualified", "lost"))
    assert answer["show_alert"] and "reason" in answer["text"]
    assert (await get_lead(feed, lead_id)).stage == "qualified"


# ---------------------------------------------------------------------------- the lost reason picker


async def test_lost_reason_picker_back_and_reason(app, feed, emulator):
    lead_id, card = await lead_with_card(feed)
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "l", lead_id, "qualified", "lost"))
    assert answer["text"] == "Why was the lead lost?" and not answer["show_alert"]
    message = next(m for m in emulator.messages(STAFF_CHAT) if m["message_id"] == card)
    labels = [b["text"] for row in message["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["Too expensive", "Chose a competitor", "No budget", "No response", "Not a fit", "⬅️ Back"]
    assert (await get_lead(feed, lead_id)).stage == "qualified"  # nothing changed yet

    await feed.press_text(MAX, STAFF_CHAT, "⬅️ Back", card)
    message = next(m for m in emulator.messages(STAFF_CHAT) if m["message_id"] == card)
    labels = [b["text"] for row in message["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["🙋 Take", "➡️ Contacted", "➡️ Nurture", "✖️ Lost"]

    await feed.press_text(MAX, STAFF_CHAT, "✖️ Lost", card)
    answer = await feed.press_text(MAX, STAFF_CHAT, "Chose a competitor", card)
    assert answer["text"] == "Moved to “Lost”."
    lead = await get_lead(feed, lead_id)
    assert (lead.stage, lead.outcome, lead.lost_reason) == ("lost", "lost", "competitor")
    stage_events = [e for e in await events(feed, lead_id, "stage") if e.actor_id == MAX["id"]]
    assert [(e.to_stage, e.reason) for e in stage_events] == [("lost", "competitor")]


async def test_bad_lost_reason_index(app, feed):
    lead_id, card = await lead_with_card(feed)
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "x", lead_id, "qualified", "lost", reason=99))
    assert answer["show_alert"] and "Unknown reason" in answer["text"]
    assert (await get_lead(feed, lead_id)).stage == "qualified"


# ---------------------------------------------------------------------------- refused presses


async def test_press_from_a_private_chat_is_refused(app, feed, emulator):
    lead_id, _ = await lead_with_card(feed)
    emulator.create_chat(MAX["id"], type="private", title="Max")
    forged = await app.bot.send_message(MAX["id"], "x")
    answer = await feed.press(MAX, MAX["id"], forged.message_id, cb(app.funnel, "m", lead_id, "qualified", "contacted"))
    assert answer["show_alert"] and answer["text"] == "These buttons and commands work only in the staff chat."
    assert (await get_lead(feed, lead_id)).stage == "qualified"


async def test_press_in_another_group_is_refused(app, feed, emulator):
    lead_id, _ = await lead_with_card(feed)
    emulator.create_chat(-777, type="supergroup", title="Other")
    other = await app.bot.send_message(-777, "x")
    answer = await feed.press(MAX, -777, other.message_id, cb(app.funnel, "t", lead_id, "qualified"))
    assert answer["show_alert"] and "only in the staff chat" in answer["text"]
    assert (await get_lead(feed, lead_id)).manager_id is None


@pytest.mark.parametrize("who", [OUTSIDER, NOT_A_MEMBER, 12345])
async def test_press_by_a_non_manager_is_refused(app, feed, who):
    lead_id, card = await lead_with_card(feed)
    for data in (cb(app.funnel, "t", lead_id, "qualified"), cb(app.funnel, "m", lead_id, "qualified", "contacted")):
        answer = await feed.press(person(who, "Eve"), STAFF_CHAT, card, data)
        assert answer["show_alert"] and answer["text"] == "Only managers can do this."
    lead = await get_lead(feed, lead_id)
    assert (lead.stage, lead.manager_id) == ("qualified", None)
    assert await events(feed, lead_id, "assign") == []


async def test_stale_card_is_refused_and_refreshed(app, feed):
    lead_id, card = await lead_with_card(feed)
    assert (await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, "qualified", "contacted")))
    edits_before = len(await outbox(feed, lead_id, "card_edit"))
    # the same (old) button again, e.g. from a card that was not refreshed yet
    answer = await feed.press(OLGA, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, "qualified", "nurture"))
    assert answer["show_alert"]
    # the card was current until Max moved the lead on, so Olga learns who did it
    assert "Contacted" in answer["text"] and "Max" in answer["text"]
    assert (await get_lead(feed, lead_id)).stage == "contacted"
    assert len(await outbox(feed, lead_id, "card_edit")) == edits_before + 1
    answer = await feed.press(OLGA, STAFF_CHAT, card, cb(app.funnel, "t", lead_id, "qualified"))
    assert "Max" in answer["text"] and (await get_lead(feed, lead_id)).manager_id is None


@pytest.mark.parametrize("data", ["L:garbage", "L:m:notanumber:1:2:3", "L:", "L:q:1:1:-1:-1"])
async def test_garbage_button_is_refused(app, feed, data):
    lead_id, card = await lead_with_card(feed)
    answer = await feed.press(MAX, STAFF_CHAT, card, data)
    assert answer is not None and answer["show_alert"]
    assert answer["text"] in ("This button is not valid. Post the card again with /lead and the lead number.",
                              "Lead not found.")
    assert (await get_lead(feed, lead_id)).stage == "qualified"


async def test_unknown_lead_and_bad_target(app, feed):
    lead_id, card = await lead_with_card(feed)
    answer = await feed.press(MAX, STAFF_CHAT, card, LeadCb(action="t", lead=lead_id + 100, at=1).pack())
    assert answer["show_alert"]  # a button of another lead under this card, or an unknown lead
    bad_target = LeadCb(action="m", lead=lead_id, at=app.funnel.stage_index("qualified"), to=99).pack()
    answer = await feed.press(MAX, STAFF_CHAT, card, bad_target)
    assert answer["show_alert"] and "not valid" in answer["text"]


async def test_a_button_of_one_lead_under_the_card_of_another_is_refused(app, feed):
    _first, card = await lead_with_card(feed)
    second, _ = await lead_with_card(feed, person(5002, "Bob"))
    answer = await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "t", second, "qualified"))
    assert answer["show_alert"] and "not valid" in answer["text"]
    assert (await get_lead(feed, second)).manager_id is None


# ---------------------------------------------------------------------------- races


async def test_two_managers_race_the_loser_learns_who_won(app, feed):
    lead_id, _ = await lead_with_card(feed)
    data = LeadCb.unpack(cb(app.funnel, "m", lead_id, "qualified", "contacted"))
    async with feed.session() as first, feed.session() as second:
        # both presses read the card's lead (and pass the stale-card check) before either has written
        seen = [await first.get(Lead, lead_id), await second.get(Lead, lead_id)]
        assert [lead.stage for lead in seen] == ["qualified", "qualified"]
        won = await svc.press(first, app.funnel, data, Actor(MAX["id"], "Max"))
        await first.commit()
        lost = await svc.press(second, app.funnel, LeadCb.unpack(cb(app.funnel, "m", lead_id, "qualified", "nurture")),
                               Actor(OLGA["id"], "Olga"))
        await second.commit()
    assert won.ok and won.code == "moved"
    assert not lost.ok and lost.code == "already_moved" and lost.by == "Max" and lost.stage == "contacted"
    assert (await get_lead(feed, lead_id)).stage == "contacted"
    manual = [e for e in await events(feed, lead_id, "stage") if e.actor_id is not None]
    assert [(e.to_stage, e.actor_name) for e in manual] == [("contacted", "Max")]


async def test_two_managers_race_for_take(app, feed):
    lead_id, _ = await lead_with_card(feed)
    data = LeadCb.unpack(cb(app.funnel, "t", lead_id, "qualified"))
    async with feed.session() as first, feed.session() as second:
        seen = [await first.get(Lead, lead_id), await second.get(Lead, lead_id)]
        won = await svc.press(first, app.funnel, data, Actor(OLGA["id"], "Olga"))
        await first.commit()
        lost = await svc.press(second, app.funnel, data, Actor(MAX["id"], "Max"))
        await second.commit()
    assert won.code == "taken" and lost.code == "already_taken" and lost.by == "Olga"
    assert all(lead.manager_id == OLGA["id"] for lead in seen)


async def test_two_presses_at_once_through_the_bot(app, feed, emulator):
    lead_id, card = await lead_with_card(feed)
    first = emulator.inject_callback(MAX, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, "qualified", "contacted"))
    second = emulator.inject_callback(OLGA, STAFF_CHAT, card, cb(app.funnel, "m", lead_id, "qualified", "nurture"))
    updates = await app.bot.get_updates(timeout=0)
    await asyncio.gather(*(app.dp.feed_update(app.bot, update) for update in updates))
    answers = [emulator.callback_answer(q["callback_query_id"])["text"] for q in (first, second)]
    winners = [a for a in answers if a.startswith("Moved to")]
    assert len(winners) == 1
    loser = next(a for a in answers if a not in winners)
    assert "Already moved" in loser
    manual = [e for e in await events(feed, lead_id, "stage") if e.actor_id is not None]
    assert len(manual) == 1
    assert (await get_lead(feed, lead_id)).stage == manual[0].to_stage


# ---------------------------------------------------------------------------- /note and /amount


async def test_note(app, feed):
    lead_id, card = await lead_with_card(feed)
    await feed.message(MAX, "/note called, <b>offer</b> on Monday", chat_id=STAFF_CHAT, reply_to_message_id=card)
    notes = await events(feed, lead_id, "note")
    assert [(n.text, n.actor_name) for n in notes] == [("called, <b>offer</b> on Monday", "Max")]
    assert feed.last_bot_text(STAFF_CHAT) == f"📝 Note added to lead #{lead_id}."
    assert await outbox(feed, lead_id, "card_edit")

    await feed.message(MAX, "/note", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT).startswith("Write the note after the command")
    await feed.message(MAX, "/note not a reply", chat_id=STAFF_CHAT)
    assert feed.last_bot_text(STAFF_CHAT) == "Send this command as a reply to a lead card."
    await feed.message(person(OUTSIDER, "Eve"), "/note hi", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT) == "Only managers can do this."
    assert len(await events(feed, lead_id, "note")) == 1


@pytest.mark.parametrize("text, value", [
    ("12000", "12000.00"), ("12 000", "12000.00"), ("12000.50", "12000.50"), ("12,000.50", "12000.50"),
    ("12 000,50", "12000.50"), ("1.234.567", "1234567.00"), ("0", "0.00"),
])
async def test_amount(app, feed, text, value):
    lead_id, card = await lead_with_card(feed)
    await feed.message(MAX, f"/amount {text}", chat_id=STAFF_CHAT, reply_to_message_id=card)
    lead = await get_lead(feed, lead_id)
    assert lead.amount == Decimal(value)
    assert [e.data["amount"] for e in await events(feed, lead_id, "amount")] == [value]
    assert feed.last_bot_text(STAFF_CHAT).startswith(f"💰 Amount of lead #{lead_id}:")
    assert await outbox(feed, lead_id, "card_edit")


@pytest.mark.parametrize("text, answer", [
    ("-5", "The amount cannot be negative."), ("abc", "That is not an amount"), ("12.5.5", "That is not an amount"),
    ("", "Write the amount after the command"), ("1e5", "That is not an amount"),
    ("99999999999999", "The amount is too large."),
])
async def test_bad_amount(app, feed, text, answer):
    lead_id, card = await lead_with_card(feed)
    await feed.message(MAX, f"/amount {text}".strip(), chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT).startswith(answer)
    assert (await get_lead(feed, lead_id)).amount is None
    assert await events(feed, lead_id, "amount") == []


# ---------------------------------------------------------------------------- relays


async def test_manager_reply_to_a_card_goes_to_the_prospect(app, feed):
    lead_id, card = await lead_with_card(feed)
    await feed.message(MAX, "Hi Ann, <when> can we call?", chat_id=STAFF_CHAT, reply_to_message_id=card)
    sends = await feed.rows(OutboxMessage, OutboxMessage.purpose == "relay")
    assert [(s.chat_id, s.lead_id) for s in sends] == [(PROSPECT["id"], lead_id)]
    assert "Hi Ann, &lt;when&gt; can we call?" in sends[0].payload["text"]
    assert "Max" in sends[0].payload["text"]
    assert [e.text for e in await events(feed, lead_id, "relay_out")] == ["Hi Ann, <when> can we call?"]
    assert feed.last_bot_text(STAFF_CHAT) == "✅ Sent to the prospect."


async def test_reply_in_the_prospects_language(app, feed):
    lead_id = await feed.make_lead(person(5003, "Оля", "uk"), locale="uk")
    card = await feed.post_card(lead_id)
    await feed.message(MAX, "Добрий день", chat_id=STAFF_CHAT, reply_to_message_id=card)
    send = (await feed.rows(OutboxMessage, OutboxMessage.purpose == "relay"))[0]
    assert "менеджер" in send.payload["text"]


async def test_reply_to_an_older_card_of_the_lead_counts(app, feed, emulator):
    lead_id, old_card = await lead_with_card(feed)
    async with feed.session() as session:  # the card was posted again (/lead): the outbox remembers the old one
        session.add(OutboxMessage(kind="card", purpose="card", lead_id=lead_id, status="sent", message_id=old_card))
        await session.commit()
    new_card = await feed.post_card(lead_id)
    assert new_card != old_card
    await feed.message(OLGA, "hello", chat_id=STAFF_CHAT, reply_to_message_id=old_card)
    assert [e.actor_name for e in await events(feed, lead_id, "relay_out")] == ["Olga"]


async def test_no_relay_to_an_anonymized_or_unreachable_prospect(app, feed):
    lead_id, card = await lead_with_card(feed)
    async with feed.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == PROSPECT["id"]))
        prospect.unreachable = True
        await session.commit()
    await feed.message(MAX, "are you there?", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT) == "Not sent: the prospect has blocked the bot."
    async with feed.session() as session:
        lead = await session.get(Lead, lead_id)
        lead.anonymized, lead.name, lead.phone = True, None, None
        await session.commit()
    await feed.message(MAX, "hello?", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT) == "Not sent: the prospect erased their data."
    assert await feed.rows(OutboxMessage, OutboxMessage.purpose == "relay") == []
    assert await events(feed, lead_id, "relay_out") == []


async def test_replies_that_are_not_relayed(app, feed, emulator):
    _lead_id, card = await lead_with_card(feed)
    chatter = await feed.message(OLGA, "lunch?", chat_id=STAFF_CHAT)
    await feed.message(MAX, "yes", chat_id=STAFF_CHAT, reply_to_message_id=chatter["message_id"])  # colleagues
    other = await app.bot.send_message(STAFF_CHAT, "some bot notice")
    await feed.message(MAX, "ok", chat_id=STAFF_CHAT, reply_to_message_id=other.message_id)  # not a card
    await feed.message(person(OUTSIDER, "Eve"), "hi", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT) == "Only managers can do this."
    await feed.message(MAX, chat_id=STAFF_CHAT, reply_to_message_id=card, photo=True)
    assert feed.last_bot_text(STAFF_CHAT) == "Only text messages can be relayed to the prospect."
    assert await feed.rows(OutboxMessage, OutboxMessage.purpose == "relay") == []


async def test_prospect_message_relayed_under_the_card_can_be_answered(app, feed):
    """A reply to the prospect's relayed message (threaded under the card) also reaches the prospect."""
    lead_id, card = await lead_with_card(feed)
    relayed = await app.bot.send_message(STAFF_CHAT, "💬 Ann: question", reply_to_message_id=card)
    async with feed.session() as session:
        session.add(OutboxMessage(kind="send", purpose="relay", lead_id=lead_id, status="sent",
                                  message_id=relayed.message_id, payload={"reply_to_card": True}))
        await session.commit()
    await feed.message(MAX, "answer", chat_id=STAFF_CHAT, reply_to_message_id=relayed.message_id)
    assert [e.text for e in await events(feed, lead_id, "relay_out")] == ["answer"]


# ---------------------------------------------------------------------------- /lead and /mine


async def test_lead_reposts_the_card(app, feed):
    lead_id, _ = await lead_with_card(feed)
    before = len(await outbox(feed, lead_id, "card"))
    await feed.message(MAX, f"/lead {lead_id}", chat_id=STAFF_CHAT)
    assert len(await outbox(feed, lead_id, "card")) == before + 1
    await feed.message(MAX, "/lead 9999", chat_id=STAFF_CHAT)
    assert feed.last_bot_text(STAFF_CHAT) == "Lead not found."
    await feed.message(MAX, "/lead abc", chat_id=STAFF_CHAT)
    assert feed.last_bot_text(STAFF_CHAT).startswith("Usage: /lead 42")
    await feed.message(person(OUTSIDER, "Eve"), f"/lead {lead_id}", chat_id=STAFF_CHAT)
    assert feed.last_bot_text(STAFF_CHAT) == "Only managers can do this."
    assert len(await outbox(feed, lead_id, "card")) == before + 1


async def test_lead_in_a_private_chat_is_not_a_staff_command(app, feed):
    lead_id, _ = await lead_with_card(feed)
    before = len(await outbox(feed, lead_id, "card"))
    await feed.message(MAX, f"/lead {lead_id}")
    assert len(await outbox(feed, lead_id, "card")) == before


async def test_mine(app, feed):
    first, card1 = await lead_with_card(feed, person(5010, "Ann"))
    second, card2 = await lead_with_card(feed, person(5011, "Bob"), name="Bob <b>")
    third, _ = await lead_with_card(feed, person(5012, "Cid"), name="Cid")
    await feed.message(MAX, "/mine", chat_id=STAFF_CHAT)
    assert feed.last_bot_text(STAFF_CHAT) == "You have no open leads."
    for lead_id, card in ((first, card1), (second, card2)):
        await feed.press(MAX, STAFF_CHAT, card, cb(app.funnel, "t", lead_id, "qualified"))
    await feed.message(MAX, "/mine", chat_id=STAFF_CHAT)
    text = feed.last_bot_text(STAFF_CHAT)
    assert text.startswith("Your open leads (2)")
    assert f"#{first} · Ann · Qualified" in text and f"#{second} · Bob <b> · Qualified" in text
    assert f"#{third}" not in text


# ---------------------------------------------------------------------------- with the real delivery worker


async def test_end_to_end_with_the_delivery_worker(app, feed, emulator):
    """Card posted by the worker, Take pressed on it, the card re-rendered in place; a reply reaches Ann."""
    from bot.delivery import DeliveryWorker

    worker = DeliveryWorker(app, group_per_minute=100_000, chat_per_second=100_000.0,
                            global_per_second=100_000.0)
    emulator.create_chat(PROSPECT["id"], type="private", title="Ann")
    lead_id = await feed.make_lead(PROSPECT)
    assert await worker.flush(timeout=20)
    (card,) = feed.bot_messages(STAFF_CHAT)
    assert f"Lead #{lead_id}" in card["text"] and "Manager: not assigned" in card["text"]

    answer = await feed.press_text(MAX, STAFF_CHAT, "🙋 Take", card["message_id"])
    assert answer["text"] == "✅ The lead is yours."
    assert await worker.flush(timeout=20)
    (card,) = feed.bot_messages(STAFF_CHAT)
    assert "Manager: Max" in card["text"] and "Max: took the lead" in card["text"]
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert "🙋 Take" not in labels and "➡️ Contacted" in labels

    await feed.press_text(MAX, STAFF_CHAT, "➡️ Contacted", card["message_id"])
    await feed.message(MAX, "Hello Ann!", chat_id=STAFF_CHAT, reply_to_message_id=card["message_id"])
    assert await worker.flush(timeout=20)
    texts = [m["text"] for m in feed.bot_messages(PROSPECT["id"])]
    assert any("Hello Ann!" in text and "Max" in text for text in texts)
    assert any("taken your request" in text for text in texts)  # the stage's notify_prospect
    card = next(m for m in feed.bot_messages(STAFF_CHAT) if m["message_id"] == card["message_id"])
    assert "Stage: Contacted" in card["text"]

    # Ann answers: threaded under her card in the staff chat
    await feed.message(PROSPECT, "Call me at 5pm")
    assert await worker.flush(timeout=20)
    relayed = feed.bot_messages(STAFF_CHAT)[-1]
    assert "Call me at 5pm" in relayed["text"]
    assert relayed["reply_to_message"]["message_id"] == card["message_id"]
    # and a manager's reply to that relayed message reaches her too
    await feed.message(OLGA, "OK, 5pm it is", chat_id=STAFF_CHAT, reply_to_message_id=relayed["message_id"])
    assert await worker.flush(timeout=20)
    assert "OK, 5pm it is" in feed.bot_messages(PROSPECT["id"])[-1]["text"]
    await worker.stop()
