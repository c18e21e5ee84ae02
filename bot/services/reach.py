"""Whether the bot can reach a chat: a prospect who blocked (or unblocked) the bot, and the bot removed
from (or added back to) the staff group.

A block is learnt two ways: Telegram's `my_chat_member` update (handlers/membership.py) and a 403 when
the outbox sends to the chat (bot/delivery.py). Both call `prospect_blocked`, so the prospect is marked
unreachable, nothing more is sent to them and the managers see it on the card, whichever comes first.

Nothing here commits (the caller's unit of work, or the delivery worker's transaction, does) and
nothing talks to Telegram directly: what must reach a chat goes through the outbox.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import KeyValue, Lead, LeadEvent, OutboxMessage, Prospect, utcnow
from bot.i18n import Translator
from bot.outbox import OUTBOX_QUEUED, STAFF, enqueue_card_edit, enqueue_send
from bot.services.leads import add_event, open_lead

log = logging.getLogger(__name__)

BLOCKED_ERROR = "prospect blocked the bot"  # the error of the outbox rows that were not sent because of it
UNREACHABLE, REACHABLE = "unreachable", "reachable"  # lead event kinds (shown on the card)
STAFF_CHAT_REMOVED = "staff_chat_removed"  # KeyValue: the bot is out of the staff group and the admins know

PROSPECT_OF_CHAT = select(Prospect).where(
    or_(Prospect.chat_id == bindparam("chat"), Prospect.tg_id == bindparam("chat"))
).limit(1)
LAST_REACH_EVENT = select(LeadEvent.kind).where(
    LeadEvent.lead_id == bindparam("lead_id"), LeadEvent.kind.in_((UNREACHABLE, REACHABLE))
).order_by(LeadEvent.id.desc()).limit(1)


@dataclass
class Blocked:
    prospect: Prospect | None
    lead: Lead | None  # the open lead whose card now says so (None: no open lead, or it said so already)
    dropped: int  # pending outbox rows of the chat that will not be sent


async def _last_reach_event(session: AsyncSession, lead: Lead) -> str | None:
    return await session.scalar(LAST_REACH_EVENT, {"lead_id": lead.id})


def _refresh_card(session: AsyncSession, lead: Lead) -> None:
    if lead.card_message_id is not None or lead.handed_off_at is not None:
        enqueue_card_edit(session, lead.id)


async def prospect_blocked(
    session: AsyncSession, chat_id: int, *, prospect: Prospect | None = None, reason: str = "blocked"
) -> Blocked:
    """The prospect of private chat `chat_id` blocked the bot: they are unreachable, the chat's pending
    outbox rows are dropped, and their open lead records it once (the card is re-rendered)."""
    dropped = await session.execute(
        update(OutboxMessage).where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == "pending")
        .values(status="dead", error=BLOCKED_ERROR).execution_options(synchronize_session=False)
    )
    if prospect is None:
        prospect = await session.scalar(PROSPECT_OF_CHAT, {"chat": chat_id})
    lead = None
    if prospect is not None:
        prospect.unreachable = True
        lead = await open_lead(session, prospect.id)
        # told once: the 403 and the update both report the same block
        if lead is not None and await _last_reach_event(session, lead) != UNREACHABLE:
            add_event(session, lead, UNREACHABLE, reason=reason)
            await session.flush()
            _refresh_card(session, lead)
        else:
            lead = None
    return Blocked(prospect, lead, dropped.rowcount or 0)


async def prospect_unblocked(session: AsyncSession, prospect: Prospect) -> Lead | None:
    """The prospect unblocked the bot (or restarted it): reachable again. When their open lead had
    recorded the block, it records this too (the card is re-rendered); that lead is returned."""
    prospect.unreachable = False
    lead = await open_lead(session, prospect.id)
    if lead is None or await _last_reach_event(session, lead) != UNREACHABLE:
        return None
    add_event(session, lead, REACHABLE, reason="unblocked")
    await session.flush()
    _refresh_card(session, lead)
    return lead


# ---------------------------------------------------------------------------- the staff group


async def admin_locale(session: AsyncSession, translator: Translator, admin_id: int) -> str:
    """An admin's language: chosen with /language or Telegram's, once they have written to the bot;
    else the bot's default."""
    prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == admin_id))
    if prospect is None:
        return translator.default_locale
    return translator.resolve(prospect.locale, prospect.tg_language)


async def tell_admins(session: AsyncSession, translator: Translator, admin_ids: Iterable[int], key: str,
                      *, purpose: str = "admin_notice") -> int:
    """Queue the text `key` for every admin, in their language, as a private message. Returns how many."""
    count = 0
    for admin in sorted(admin_ids):
        text = translator.get(key, await admin_locale(session, translator, admin))
        enqueue_send(session, admin, text, purpose=purpose)
        count += 1
    return count


async def staff_chat_lost(session: AsyncSession, translator: Translator, admin_ids: Iterable[int],
                          chat_id: int, status: str) -> int:
    """The bot was removed from the staff group: staff rows wait in the outbox (the delivery worker
    retries them); the admins are told, and it is remembered for `staff_chat_back`. Returns how many
    admins were told."""
    log.warning("the bot was removed from the staff chat %s (now %s): cards and relays wait until it is "
                "added back", chat_id, status)
    await session.merge(KeyValue(key=STAFF_CHAT_REMOVED, value={"chat_id": chat_id, "status": status}))
    return await tell_admins(session, translator, admin_ids, "admin-staff-chat-removed")


async def staff_chat_back(session: AsyncSession, translator: Translator, admin_ids: Iterable[int],
                          chat_id: int) -> int:
    """The bot is in the staff group (again): what waited is due now (not at its backed-off retry time).
    The admins are told when they had been told of the removal (not when the bot is first added, nor
    for the join Telegram sends after a group's upgrade to a supergroup). Returns how many staff rows
    were waiting."""
    waiting = await session.execute(
        update(OutboxMessage).where(
            or_(OutboxMessage.chat_id.is_(STAFF), OutboxMessage.chat_id == chat_id),
            OutboxMessage.status == "pending",
        ).values(next_attempt_at=utcnow()).execution_options(synchronize_session=False)
    )
    count = waiting.rowcount or 0
    if count:
        session.info[OUTBOX_QUEUED] = True  # the unit of work wakes the delivery worker after the commit
    removed = await session.get(KeyValue, STAFF_CHAT_REMOVED)
    if removed is None:
        log.info("the bot is in the staff chat %s; %s waiting message(s) go out now", chat_id, count)
        return count
    log.warning("the bot is back in the staff chat %s; %s waiting message(s) go out now", chat_id, count)
    await session.delete(removed)
    await tell_admins(session, translator, admin_ids, "admin-staff-chat-back")
    return count


__all__ = [
    "BLOCKED_ERROR", "REACHABLE", "UNREACHABLE", "Blocked", "admin_locale", "prospect_blocked",
    "prospect_unblocked", "staff_chat_back", "staff_chat_lost", "tell_admins",
]
