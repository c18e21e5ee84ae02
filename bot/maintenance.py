"""Housekeeping: dedupe keys are only needed while Telegram may still redeliver (it keeps updates
for 24 hours), so rows older than `keep` are removed once an hour."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ProcessedMessage, ProcessedUpdate, utcnow

log = logging.getLogger(__name__)
KEEP = timedelta(days=2)
KEEP_REPLIES = timedelta(hours=1)


async def prune(session_factory: async_sessionmaker[AsyncSession], now: datetime | None = None,
                keep: timedelta = KEEP) -> int:
    now = now or utcnow()
    cutoff = now - keep
    async with session_factory() as session, session.begin():
        # the replies on a marker only matter for a crash between its commit and its sends
        await session.execute(update(ProcessedUpdate).where(ProcessedUpdate.processed_at < now - KEEP_REPLIES,
                                                            ProcessedUpdate.replies.is_not(None))
                              .values(replies=None, chat_id=None))
        updates = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
        messages = await session.execute(delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff))
    removed = (updates.rowcount or 0) + (messages.rowcount or 0)
    if removed:
        log.info("pruned %d dedupe keys older than %s", removed, keep)
    return removed


async def run_forever(session_factory: async_sessionmaker[AsyncSession], every: float = 3600) -> None:
    while True:
        try:
            await prune(session_factory)
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the bot
            log.warning("pruning dedupe keys failed: %s", exc)
        await asyncio.sleep(every)
