"""/mydata and /forget: everything stored about a prospect, and erasing it.

After /forget the leads stay in the statistics as anonymous counts (stage, source, score, dates),
but every personal field, answer text and relayed message is erased."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    DeadLetter,
    DialogueRun,
    FSMRecord,
    Lead,
    LeadEvent,
    OutboxMessage,
    ProcessedUpdate,
    Prospect,
    utcnow,
)
from bot.db.sqlite_driver import in_place
from bot.i18n import Texts
from bot.outbox import enqueue_card_edit
from bot.services.leads import add_event
from funnel import Funnel


async def export_prospect(session: AsyncSession, funnel: Funnel, prospect: Prospect, locale: str) -> dict[str, Any]:
    leads = (await session.scalars(select(Lead).where(Lead.prospect_id == prospect.id).order_by(Lead.id))).all()
    out_leads = []
    for lead in leads:
        answers = {}
        for key, value in (lead.answers or {}).items():
            if funnel.has_step(key):
                step = funnel.step(key)
                option = step.option(value) if step.kind == "choice" else None
                answers[funnel.label(step.title, locale)] = funnel.label(option.label, locale) if option else value
        events = (await session.scalars(
            select(LeadEvent).where(LeadEvent.lead_id == lead.id).order_by(LeadEvent.id))).all()
        out_leads.append({
            "id": lead.id, "created": lead.created_at.isoformat(), "source": lead.source,
            "name": lead.name, "phone": lead.phone, "phone_verified": lead.phone_verified, "email": lead.email,
            "answers": answers, "stage": funnel.label(funnel.stage(lead.stage).title, locale)
            if funnel.has_stage(lead.stage) else lead.stage,
            "score": lead.score, "band": lead.band,
            "messages": [{"at": e.created_at.isoformat(), "kind": e.kind, "text": e.text}
                         for e in events if e.kind in ("relay_in", "relay_out") and e.text],
        })
    return {
        "telegram_id": prospect.tg_id, "username": prospect.username, "first_name": prospect.first_name,
        "name": prospect.name, "phone": prospect.phone, "phone_verified": prospect.phone_verified,
        "email": prospect.email, "language": prospect.locale or prospect.tg_language,
        "consent_given": prospect.consent_at.isoformat() if prospect.consent_at else None,
        "leads": out_leads,
    }


def describe(data: dict[str, Any], t: Texts) -> str:
    dash = "—"
    return t(
        "mydata-summary", name=data["name"] or dash, phone=data["phone"] or dash, email=data["email"] or dash,
        leads=len(data["leads"]),
    )


async def forget(session: AsyncSession, funnel: Funnel, prospect: Prospect) -> int:
    """Erase the prospect's personal data. Returns how many leads were anonymised."""
    # its UPDATEs scan the outbox (an OR of two columns) and the FSM keys: SQLite runs them in its own
    # thread, not the event loop's, even inside an update (bot/db/sqlite_driver.py)
    async with in_place(False):
        return await _erase(session, funnel, prospect)


async def _erase(session: AsyncSession, funnel: Funnel, prospect: Prospect) -> int:
    now = utcnow()
    leads = (await session.scalars(select(Lead).where(Lead.prospect_id == prospect.id))).all()
    for lead in leads:
        lead.name = lead.phone = lead.email = lead.username = None
        lead.tg_id = None
        # answers to choice questions are option keys (not personal) and keep the statistics; free texts go
        lead.answers = {k: v for k, v in (lead.answers or {}).items()
                        if funnel.has_step(k) and funnel.step(k).kind == "choice"}
        lead.anonymized = True
        await session.execute(update(LeadEvent).where(LeadEvent.lead_id == lead.id).values(text=None))
        add_event(session, lead, "erased", at=now)
        if lead.card_message_id is not None:
            enqueue_card_edit(session, lead.id)
    # texts sent to them or about them (relays of their messages to the staff chat, replies to them):
    # pending ones are not sent any more, and no stored copy keeps their words
    about_them = or_(OutboxMessage.chat_id == prospect.chat_id,
                     OutboxMessage.lead_id.in_([lead.id for lead in leads]))
    texts = OutboxMessage.kind.in_(("send", "document", "photo"))
    await session.execute(
        update(OutboxMessage).where(about_them, texts, OutboxMessage.status == "pending")
        .values(status="dead", error="prospect erased their data")
    )
    await session.execute(update(OutboxMessage).where(about_them, texts).values(payload={}))
    # updates of theirs that failed were kept whole (their texts, contacts) for the operators
    await session.execute(
        update(DeadLetter).where(DeadLetter.user_id == prospect.tg_id)
        .values(user_id=None, update={}, traceback=None, error="erased at the user's request")
    )
    await session.execute(  # the replies kept for a crash right after a commit quote what they told them
        update(ProcessedUpdate).where(ProcessedUpdate.chat_id == prospect.chat_id).values(replies=None, chat_id=None)
    )
    await session.execute(update(DialogueRun).where(DialogueRun.prospect_id == prospect.id).values(prospect_id=None))
    fsm = (await session.scalars(select(FSMRecord).where(FSMRecord.key.contains(f":{prospect.tg_id}:")))).all()
    for record in fsm:
        await session.delete(record)
    prospect.name = prospect.phone = prospect.email = prospect.username = prospect.first_name = None
    prospect.phone_verified = False
    prospect.consent_at = None
    prospect.locale = None
    prospect.forgotten_at = now
    return len(leads)

