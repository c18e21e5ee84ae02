"""The transactional outbox: messages that matter are written in the same transaction as the
change that causes them and sent after the commit by the delivery worker (`bot.delivery`)."""
from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import OutboxMessage

STAFF = None  # chat_id None: the staff chat, resolved at send time (it may migrate)
OUTBOX_QUEUED = "outbox_queued"  # session.info flag: the unit of work wakes the worker after the commit


def _queue(session: AsyncSession, row: OutboxMessage) -> OutboxMessage:
    session.add(row)
    session.info[OUTBOX_QUEUED] = True
    return row


def _markup(markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None) -> dict[str, Any] | None:
    return markup.model_dump(mode="json", exclude_none=True) if markup is not None else None


def enqueue_send(
    session: AsyncSession,
    chat_id: int | None,
    text: str,
    *,
    purpose: str = "notify",
    lead_id: int | None = None,
    reply_markup: InlineKeyboardMarkup | None = None,
    reply_to_card: bool = False,
    reply_to_message_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """A text message. `reply_to_card=True` threads it under the lead's staff card."""
    row = OutboxMessage(
        kind="send", purpose=purpose, chat_id=chat_id, lead_id=lead_id, dedupe_key=dedupe_key,
        payload={
            "text": text,
            "reply_markup": _markup(reply_markup),
            "reply_to_card": reply_to_card,
            "reply_to_message_id": reply_to_message_id,
        },
    )
    return _queue(session, row)


def enqueue_document(
    session: AsyncSession, chat_id: int | None, path: str, *, caption: str | None = None,
    filename: str | None = None, purpose: str = "document", lead_id: int | None = None,
) -> OutboxMessage:
    row = OutboxMessage(
        kind="document", purpose=purpose, chat_id=chat_id, lead_id=lead_id,
        payload={"path": path, "caption": caption, "filename": filename},
    )
    return _queue(session, row)


def enqueue_card(session: AsyncSession, lead_id: int) -> OutboxMessage:
    """Post the lead's card in the staff chat (rendered from the database when it is sent)."""
    row = OutboxMessage(kind="card", purpose="card", chat_id=STAFF, lead_id=lead_id, payload={})
    return _queue(session, row)


def enqueue_card_edit(session: AsyncSession, lead_id: int) -> OutboxMessage:
    """Re-render the lead's card in place; several pending edits of one card collapse into one."""
    row = OutboxMessage(kind="card_edit", purpose="card", chat_id=STAFF, lead_id=lead_id, payload={})
    return _queue(session, row)


async def card_waiting(session: AsyncSession, lead_id: int) -> bool:
    """True while the lead's card is queued and not claimed yet: when it is posted it renders the lead as it
    is then, so whatever happens to the lead meanwhile is on it (an edit or a ping under it would repeat it)."""
    row = await session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.lead_id == lead_id, OutboxMessage.kind == "card", OutboxMessage.status == "pending",
        ).limit(1)
    )
    return row is not None
