"""The bot's own membership (`my_chat_member`): a prospect blocks and unblocks the bot, the bot is
removed from and added back to the staff group. Nothing is ever sent into the chat the update is about."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from bot.cards import render_card
from bot.db.models import DeadLetter, Lead, LeadEvent, OutboxMessage, Prospect, utcnow
from bot.delivery import DeliveryWorker
from bot.outbox import enqueue_send
from bot.services.reach import BLOCKED_ERROR
from tests.flow.conftest import ADMIN, MANAGERS, STAFF_CHAT, person

ANN = person(6101, "Ann", username="ann")
MAX = person(MANAGERS[0], "Max")
FAST = {"group_per_minute": 100_000, "chat_per_second": 100_000.0, "global_per_second": 100_000.0,
        "backoff_base": 0.0}


async def lead_with_card(feed, emulator, user=ANN) -> tuple[int, int]:
    """A handed-off lead whose card is in the staff chat; the prospect's private chat exists."""
    emulator.create_chat(user["id"], type="private", title=user["first_name"])
    lead_id = await feed.make_lead(user)
    return lead_id, await feed.post_card(lead_id)  # posted: the queued card row is done


async def prospect_of(feed, user=ANN) -> Prospect:
    async with feed.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == user["id"]))
        assert prospect is not None
        return prospect


async def events(feed, lead_id: int, *kinds: str) -> list[str]:
    return [e.kind for e in await feed.rows(LeadEvent, LeadEvent.lead_id == lead_id, LeadEvent.kind.in_(kinds))]


async def card_edits(feed, lead_id: int) -> list[OutboxMessage]:
    return await feed.rows(OutboxMessage, OutboxMessage.lead_id == lead_id, OutboxMessage.kind == "card_edit",
                           OutboxMessage.status == "pending")


async def card_text(app, feed, lead_id: int) -> str:
    async with feed.session() as session:
        lead = await session.get(Lead, lead_id)
        text, _ = await render_card(session, lead, funnel=app.funnel, translator=app.translator, locale="en")
        return text


def last_call(emulator) -> int:
    calls = emulator.calls()
    return calls[-1]["seq"] if calls else 0


def calls_to(emulator, chat_id: int, since: int) -> list[dict]:
    return [c for c in emulator.calls(since=since) if c["params"].get("chat_id") == chat_id]


def member_update(user, old: str, new: str, *, update_id: int) -> dict:
    """A my_chat_member update of the bot in `user`'s private chat, as Telegram sends it."""
    bot = {"id": 123456, "is_bot": True, "first_name": "Bot", "username": "bot"}
    return {"update_id": update_id, "my_chat_member": {
        "chat": {"id": user["id"], "type": "private", "first_name": user["first_name"]}, "from": user, "date": 0,
        "old_chat_member": {"status": old, "user": bot, **({"until_date": 0} if old == "kicked" else {})},
        "new_chat_member": {"status": new, "user": bot, **({"until_date": 0} if new == "kicked" else {})},
    }}


async def queue(feed, chat_id: int | None, text: str, **kw) -> int:
    async with feed.session() as session:
        row = enqueue_send(session, chat_id, text, **kw)
        await session.commit()
        return row.id


# ---------------------------------------------------------------------------- a prospect blocks the bot


async def test_block_marks_the_prospect_unreachable_and_tells_the_managers(app, feed, emulator):
    lead_id, _card = await lead_with_card(feed, emulator)
    waiting = await queue(feed, ANN["id"], "your proposal is on its way", purpose="stage_notify", lead_id=lead_id)
    since = last_call(emulator)

    emulator.block(ANN["id"])
    [update] = await feed.drain()
    assert update.my_chat_member is not None

    assert (await prospect_of(feed)).unreachable is True
    [row] = await feed.rows(OutboxMessage, OutboxMessage.id == waiting)
    assert (row.status, row.error) == ("dead", BLOCKED_ERROR)  # never tried
    assert await events(feed, lead_id, "unreachable", "reachable") == ["unreachable"]
    assert len(await card_edits(feed, lead_id)) == 1
    assert "⛔ the prospect blocked the bot" in await card_text(app, feed, lead_id)
    assert calls_to(emulator, ANN["id"], since) == []  # nothing sent (or tried) to Ann
    assert await feed.rows(DeadLetter) == []

    # a manager's reply is refused at once, not queued
    await feed.message(MAX, "are you there?", chat_id=STAFF_CHAT, reply_to_message_id=_card)
    assert feed.last_bot_text(STAFF_CHAT) == "Not sent: the prospect has blocked the bot."
    assert await feed.rows(OutboxMessage, OutboxMessage.purpose == "relay") == []


async def test_the_update_and_a_403_report_one_block_once(app, feed, emulator):
    """A send that met the 403 first (the delivery worker) and the update after it: one event."""
    lead_id, _ = await lead_with_card(feed, emulator)
    await queue(feed, ANN["id"], "hello", lead_id=lead_id)
    emulator.block(ANN["id"])
    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)  # the 403: unreachable, the event, the card edited
    assert await events(feed, lead_id, "unreachable") == ["unreachable"]

    await feed.drain()  # then the my_chat_member update (the middleware had seen them as reachable)
    assert (await prospect_of(feed)).unreachable is True
    assert await events(feed, lead_id, "unreachable", "reachable") == ["unreachable"]
    assert await card_edits(feed, lead_id) == []  # nothing new to show
    await worker.stop()


async def test_block_without_a_lead(app, feed, emulator):
    emulator.create_chat(ANN["id"], type="private", title="Ann")
    emulator.block(ANN["id"])
    await feed.drain()
    assert (await prospect_of(feed)).unreachable is True
    assert await feed.rows(OutboxMessage) == [] and await feed.rows(DeadLetter) == []


# ---------------------------------------------------------------------------- and unblocks it


async def test_unblock_makes_the_prospect_reachable_and_the_card_says_so(app, feed, emulator):
    lead_id, card = await lead_with_card(feed, emulator)
    emulator.block(ANN["id"])
    await feed.drain()
    since = last_call(emulator)

    emulator.block(ANN["id"], blocked=False)
    await feed.drain()
    assert (await prospect_of(feed)).unreachable is False
    assert await events(feed, lead_id, "unreachable", "reachable") == ["unreachable", "reachable"]
    assert len(await card_edits(feed, lead_id)) == 2  # the block's edit and this one (collapsed when sent)
    assert "✅ the prospect unblocked the bot" in await card_text(app, feed, lead_id)
    assert calls_to(emulator, ANN["id"], since) == []  # no "welcome back": they did not write

    await feed.message(MAX, "welcome back", chat_id=STAFF_CHAT, reply_to_message_id=card)
    assert feed.last_bot_text(STAFF_CHAT) == "✅ Sent to the prospect."


async def test_unblock_when_nobody_was_told_of_a_block_records_nothing(app, feed, emulator):
    lead_id, _ = await lead_with_card(feed, emulator)
    async with feed.session() as session:  # blocked before this bot version handled the update
        (await session.scalar(select(Prospect).where(Prospect.tg_id == ANN["id"]))).unreachable = True
        await session.commit()
    await feed.update(member_update(ANN, "kicked", "member", update_id=10_001))
    assert (await prospect_of(feed)).unreachable is False
    assert await events(feed, lead_id, "unreachable", "reachable") == []
    assert await card_edits(feed, lead_id) == []


async def test_unblock_after_the_lead_was_closed_records_nothing(app, feed, emulator):
    lead_id, _ = await lead_with_card(feed, emulator)
    emulator.block(ANN["id"])
    await feed.drain()
    async with feed.session() as session:
        (await session.get(Lead, lead_id)).outcome = "lost"
        await session.commit()
    emulator.block(ANN["id"], blocked=False)
    await feed.drain()
    assert (await prospect_of(feed)).unreachable is False
    assert await events(feed, lead_id, "unreachable", "reachable") == ["unreachable"]


async def test_with_the_delivery_worker_the_card_shows_both_and_ann_gets_nothing(app, feed, emulator):
    _lead_id, card = await lead_with_card(feed, emulator)
    worker = DeliveryWorker(app, **FAST)
    since = last_call(emulator)
    emulator.block(ANN["id"])
    await feed.drain()
    assert await worker.flush(timeout=20)
    [shown] = [m for m in feed.bot_messages(STAFF_CHAT) if m["message_id"] == card]
    assert "the prospect blocked the bot" in shown["text"]

    emulator.block(ANN["id"], blocked=False)
    await feed.drain()
    assert await worker.flush(timeout=20)
    [shown] = [m for m in feed.bot_messages(STAFF_CHAT) if m["message_id"] == card]
    assert "the prospect unblocked the bot" in shown["text"]
    assert calls_to(emulator, ANN["id"], since) == []
    await worker.stop()


# ---------------------------------------------------------------------------- the staff group


async def test_removed_from_the_staff_group_the_admins_are_told(app, feed, emulator, caplog):
    since = last_call(emulator)
    with caplog.at_level(logging.WARNING, logger="bot.services.reach"):
        emulator.remove_bot(STAFF_CHAT, by=MANAGERS[0])
        await feed.drain()
    assert any("removed from the staff chat" in r.getMessage() for r in caplog.records)
    [notice] = await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)
    assert notice.kind == "send" and notice.purpose == "admin_notice"
    assert notice.payload["text"] == ("⚠️ The bot was removed from the staff group. New leads wait in the queue "
                                      "until it is added back.")
    assert calls_to(emulator, STAFF_CHAT, since) == []  # not a word into the group


async def test_the_admin_is_told_in_their_language(app, feed, emulator):
    await feed.message(person(ADMIN, "Адмін", "uk"), "/help")  # the admin has written to the bot
    emulator.remove_bot(STAFF_CHAT, status="left")
    await feed.drain()
    [notice] = await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)
    assert notice.payload["text"].startswith("⚠️ Бота видалили з групи менеджерів.")


async def test_added_back_the_waiting_staff_messages_are_due_now(app, feed, emulator):
    lead_id = await feed.make_lead(ANN)  # its card is queued for the staff chat
    async with feed.session() as session:  # the worker had been retrying it with backoff
        [card] = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "card"))).all()
        card.attempts, card.next_attempt_at = 7, utcnow() + timedelta(minutes=5)
        await session.commit()
    emulator.remove_bot(STAFF_CHAT)
    await feed.drain()
    emulator.remove_bot(STAFF_CHAT, removed=False)
    await feed.drain()

    texts = [r.payload["text"] for r in await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)]
    assert texts[0].startswith("⚠️ The bot was removed") and texts[1].startswith("✅ The bot is back")
    [card] = await feed.rows(OutboxMessage, OutboxMessage.kind == "card", OutboxMessage.lead_id == lead_id)
    assert card.status == "pending" and card.next_attempt_at <= utcnow()

    worker = DeliveryWorker(app, **FAST)
    assert await worker.flush(timeout=20)
    assert any(f"Lead #{lead_id}" in m["text"] for m in feed.bot_messages(STAFF_CHAT))
    await worker.stop()


async def test_first_added_to_the_staff_group_the_admins_are_not_told_it_is_back(app, feed, emulator):
    """The bot added at set-up (or the join Telegram sends after an upgrade to a supergroup): nothing to
    say, but what waited goes out now."""
    await feed.make_lead(ANN)
    async with feed.session() as session:
        [card] = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "card"))).all()
        card.next_attempt_at = utcnow() + timedelta(minutes=5)
        await session.commit()
    emulator.set_member(STAFF_CHAT, emulator.bot_id, "left")  # not in the group yet (no update for that)
    emulator.remove_bot(STAFF_CHAT, removed=False, status="administrator")
    await feed.drain()
    assert await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN) == []
    [card] = await feed.rows(OutboxMessage, OutboxMessage.kind == "card")
    assert card.next_attempt_at <= utcnow()
    # and a second "back" after one announced return says nothing either
    emulator.remove_bot(STAFF_CHAT)
    await feed.drain()
    emulator.remove_bot(STAFF_CHAT, removed=False)
    await feed.drain()
    emulator.remove_bot(STAFF_CHAT, removed=False, status="administrator")  # already in: no update
    await feed.drain()
    assert len(await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)) == 2


async def test_another_group_is_not_the_staff_group(app, feed, emulator):
    emulator.create_chat(-4242, type="group", title="Random")
    emulator.remove_bot(-4242)
    emulator.remove_bot(-4242, removed=False)
    await feed.drain()
    assert await feed.rows(OutboxMessage) == [] and await feed.rows(DeadLetter) == []


async def test_my_chat_member_is_asked_for(app):
    assert "my_chat_member" in app.dp.resolve_used_update_types()


async def test_the_unblock_service_clears_the_flag_itself(app, feed, emulator):
    """The context middleware clears it too when the update arrives; the service must not rely on that."""
    from bot.services import reach

    await lead_with_card(feed, emulator)
    async with feed.session() as session:
        prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == ANN["id"]))
        await reach.prospect_blocked(session, ANN["id"], prospect=prospect)
        assert prospect.unreachable is True
        lead = await reach.prospect_unblocked(session, prospect)
        assert prospect.unreachable is False and lead is not None
        await session.commit()


async def test_at_start_a_bot_missing_from_the_staff_group_tells_the_admins_once(app, feed, emulator, caplog):
    """Removed while the bot was down and the update gone (or never in it): found at start
    (getChatMember), told to the admins once, and that it is back once it is."""
    from bot.roles import check_staff_chat

    assert await check_staff_chat(app) is False  # in the group: nothing to say
    assert await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN) == []
    emulator.set_member(STAFF_CHAT, app.bot.id, "kicked")  # no update of it reaches the bot
    with caplog.at_level(logging.WARNING, logger="bot.services.reach"):
        assert await check_staff_chat(app) is True
    assert any("removed from the staff chat" in r.getMessage() for r in caplog.records)
    assert await check_staff_chat(app) is False  # the next start says nothing more
    [notice] = await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)
    assert notice.payload["text"].startswith("⚠️ The bot was removed from the staff group.")
    emulator.set_member(STAFF_CHAT, app.bot.id, "administrator")  # added back while it was down
    assert await check_staff_chat(app) is True
    texts = [row.payload["text"] for row in await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)]
    assert len(texts) == 2 and texts[1].startswith("✅ The bot is back in the staff group.")
    assert await check_staff_chat(app) is False


async def test_at_start_a_staff_chat_the_bot_cannot_see_is_told_to_the_admins(app, feed, emulator):
    from bot.roles import check_staff_chat

    app.staff.id = -100999  # a wrong STAFF_CHAT_ID
    assert await check_staff_chat(app) is True
    [notice] = await feed.rows(OutboxMessage, OutboxMessage.chat_id == ADMIN)
    assert notice.purpose == "admin_notice"
