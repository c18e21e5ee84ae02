"""The scheduled digest: every day (or every Monday, DIGEST=weekly) from DIGEST_HOUR local time, a short
summary of the previous day (week) is queued in the outbox for every admin.

The dedupe key `digest:<local date>:<admin id>` makes it once per admin per day, whatever the number of
restarts or replicas; a bot that was down at DIGEST_HOUR sends it when it comes back the same day.
`start(app)` also builds the analytics summary tables once in the background (see
`bot.analytics.models.ensure_summary`)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.analytics import queries
from bot.analytics.models import ensure_summary
from bot.analytics.periods import parse_period
from bot.analytics.report import render_digest
from bot.db.models import OutboxMessage, utcnow
from bot.outbox import enqueue_send
from bot.services.reach import admin_locale

log = logging.getLogger(__name__)
CHECK_EVERY = 300.0  # seconds between checks

_task: asyncio.Task[None] | None = None


def dedupe_key(day: Any, admin_id: int) -> str:
    return f"digest:{day}:{admin_id}"


def due(settings: Any, now: datetime) -> tuple[str, str] | None:
    """(kind, period argument) when a digest is due at `now`, else None."""
    if settings.digest == "off" or not settings.admin_ids:
        return None
    local = now.astimezone(settings.tz)
    if local.hour < settings.digest_hour:
        return None
    today = local.date()
    if settings.digest == "weekly":
        if local.weekday() != 0:
            return None
        return "weekly", f"{today - timedelta(days=7)}..{today - timedelta(days=1)}"
    return "daily", str(today - timedelta(days=1))


async def run_digest_once(app: Any, now: datetime | None = None) -> int:
    """Queue the digest for every admin who has not had today's yet. Returns how many were queued."""
    now = now or utcnow()
    settings = app.settings
    plan = due(settings, now)
    if plan is None:
        return 0
    kind, argument = plan
    today = now.astimezone(settings.tz).date()
    queued = 0
    async with app.session_factory() as session:
        keys = {admin: dedupe_key(today, admin) for admin in settings.admin_ids}
        sent = set((await session.scalars(
            select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(list(keys.values())))
        )).all())
        waiting = [admin for admin, key in keys.items() if key not in sent]
        if not waiting:
            return 0
        period = parse_period(argument, settings.tz, now)
        stats = await queries.stats(session, app.funnel, period)
        texts = {}
        for admin in waiting:
            locale = await admin_locale(session, app.translator, admin)
            texts[admin] = render_digest(stats, app.funnel, app.translator.for_locale(locale), locale, kind, argument)
    for admin, text in texts.items():
        async with app.session_factory() as session:  # one transaction each: a duplicate spoils nothing else
            enqueue_send(session, admin, text, purpose="digest", dedupe_key=keys[admin])
            try:
                await session.commit()
                queued += 1
            except IntegrityError:  # another replica queued it a moment ago
                await session.rollback()
                log.info("digest for admin %s already queued", admin)
    if queued and getattr(app, "delivery", None) is not None:
        app.delivery.wake()
    if queued:
        log.info("%s digest queued for %s admin(s)", kind, queued)
    return queued


async def _loop(app: Any) -> None:
    try:
        await ensure_summary(app.session_factory)
    except Exception:
        log.exception("could not build the analytics summary tables")
    while True:
        try:
            await run_digest_once(app)
        except Exception:
            log.exception("digest check failed")
        await asyncio.sleep(CHECK_EVERY)


def start(app: Any) -> asyncio.Task[None]:
    """Start the background task (idempotent)."""
    global _task
    if _task is None or _task.done():
        _task = asyncio.create_task(_loop(app), name="digest")
    return _task


async def stop() -> None:
    global _task
    task, _task = _task, None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
