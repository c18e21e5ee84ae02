"""The staff-chat handoff and the prospect's after-dialogue menu: card buttons, notes, amounts, relays.

Nothing here commits (the update's unit of work does) and nothing talks to Telegram directly: what
must reach a chat goes through the outbox. Texts are passed in already translated by the handler
(`t` of the reader's language), so these functions stay free of presentation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Lead, LeadEvent, OutboxMessage, Prospect, utcnow
from bot.outbox import STAFF, card_waiting, enqueue_card, enqueue_card_edit, enqueue_send
from bot.services import leads
from bot.services.leads import SYSTEM, Actor, add_event
from funnel import Funnel, is_open
from handlers.callbacks import LeadCb

NOTE_LIMIT = 3500
RELAY_LIMIT = 3500
RELAY_ACK_QUIET = timedelta(minutes=10)  # the prospect is told "passed to a manager" again after this long
AMOUNT_MAX = Decimal("999999999999.99")  # Numeric(14, 2)


# ---------------------------------------------------------------------------- finding the lead of a card


async def lead_of_message(session: AsyncSession, chat_id: int, message_id: int) -> Lead | None:
    """The lead a staff-chat message belongs to: its current card, an older card of it (re-posted
    with /lead) or a message the bot threaded under the card (a relayed question)."""
    lead = await session.scalar(
        select(Lead).where(Lead.card_chat_id == chat_id, Lead.card_message_id == message_id)
        .order_by(Lead.id.desc()).limit(1)
    )
    if lead is not None:
        return lead
    lead_id = await session.scalar(
        select(OutboxMessage.lead_id).where(
            OutboxMessage.message_id == message_id, OutboxMessage.lead_id.is_not(None),
            OutboxMessage.chat_id.is_(STAFF) | (OutboxMessage.chat_id == chat_id),
            OutboxMessage.kind.in_(("card", "send")),
        ).order_by(OutboxMessage.id.desc()).limit(1)
    )
    return await session.get(Lead, lead_id) if lead_id is not None else None


# ---------------------------------------------------------------------------- card buttons


@dataclass
class Press:
    """The outcome of a card button press. `code` names the answer; `ok` means something changed."""

    code: str  # taken, moved, picker, back, stale, not_found, bad_button, already_taken, same, closed,
    # already_moved, not_allowed, needs_reason, bad_reason
    ok: bool = False
    lead: Lead | None = None
    stage: str | None = None  # the lead's stage after the press
    target: str | None = None  # the stage the press asked for
    by: str | None = None  # who won a race / holds the lead
    lost_index: int = -1


async def press(session: AsyncSession, funnel: Funnel, data: LeadCb, actor: Actor) -> Press:
    """Apply an (already authorised) card button press. Refusals change nothing, except that a
    stale card is queued for a refresh."""
    lead = await session.get(Lead, data.lead)
    if lead is None:
        return Press("not_found")
    if not funnel.has_stage(lead.stage):
        return Press("bad_button", lead=lead, stage=lead.stage)
    current = funnel.stage_index(lead.stage)
    if data.at != current:
        enqueue_card_edit(session, lead.id)
        if 0 <= data.at < len(funnel.stages):
            # the card was current until a manager moved the lead on: say who (the loser of a race)
            winner = await session.scalar(
                select(LeadEvent).where(LeadEvent.lead_id == lead.id, LeadEvent.kind == "stage",
                                        LeadEvent.from_stage == funnel.stages[data.at].key,
                                        LeadEvent.actor_id.is_not(None))
                .order_by(LeadEvent.id.desc()).limit(1))
            if winner is not None:
                return Press("already_moved", lead=lead, stage=lead.stage, by=winner.actor_name)
        return Press("stale", lead=lead, stage=lead.stage)
    action = data.action
    if action == "t":
        if not is_open(funnel, lead.stage):
            return Press("closed", lead=lead, stage=lead.stage)
        result = await leads.assign(session, lead.id, actor)
        return Press("taken" if result.ok else (result.problem or "already_taken"), ok=result.ok, lead=lead,
                     stage=lead.stage, by=result.by)
    if action == "b":
        return Press("back", lead=lead, stage=lead.stage)
    if action in ("m", "l", "x"):
        if not 0 <= data.to < len(funnel.stages):
            return Press("bad_button", lead=lead, stage=lead.stage)
        target = funnel.stages[data.to]
        allowed = target.key in funnel.stage(lead.stage).to
        if not allowed:
            return Press("not_allowed", lead=lead, stage=lead.stage, target=target.key)
        if action == "l":
            if target.outcome != "lost":
                return Press("bad_button", lead=lead, stage=lead.stage)
            return Press("picker", lead=lead, stage=lead.stage, target=target.key, lost_index=data.to)
        reason: str | None = None
        if action == "x":
            if target.outcome != "lost" or not 0 <= data.reason < len(funnel.lost_reasons):
                return Press("bad_reason", lead=lead, stage=lead.stage, target=target.key)
            reason = funnel.lost_reasons[data.reason].key
        result = await leads.move_stage(session, funnel, lead.id, expected=lead.stage, to=target.key, actor=actor,
                                        reason=reason)
        if result.ok:
            return Press("moved", ok=True, lead=lead, stage=result.stage, target=target.key)
        return Press(result.problem or "not_allowed", lead=lead, stage=result.stage, target=target.key,
                     by=result.by)
    return Press("bad_button", lead=lead, stage=lead.stage)


# ---------------------------------------------------------------------------- notes and amounts


def add_note(session: AsyncSession, lead: Lead, actor: Actor, text: str) -> None:
    add_event(session, lead, "note", actor=actor, text=text.strip()[:NOTE_LIMIT])
    enqueue_card_edit(session, lead.id)


class AmountError(ValueError):
    """`code`: empty, garbage, negative, too_large."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_GROUPED_COMMA = re.compile(r"\d{1,3}(,\d{3})+")
_GROUPED_DOT = re.compile(r"\d{1,3}(\.\d{3}){2,}")


def parse_amount(text: str | None) -> Decimal:
    """A deal amount as managers type it: 12000, 12 000, 12000.50, 12,000.50, 12 000,50.

    Raises AmountError for empty, garbage, negative or too large values. Two decimals at most
    (rounded half up)."""
    raw = _SPACES.sub("", text or "")
    if not raw:
        raise AmountError("empty")
    if raw.startswith(("-", "−", "–")):
        raise AmountError("negative")
    raw = raw.lstrip("+")
    if "," in raw and "." in raw:
        decimal_sep = "," if raw.rfind(",") > raw.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        raw = raw.replace(thousands, "").replace(decimal_sep, ".")
    elif "," in raw:
        raw = raw.replace(",", "") if _GROUPED_COMMA.fullmatch(raw) else raw.replace(",", ".")
    elif _GROUPED_DOT.fullmatch(raw):
        raw = raw.replace(".", "")
    if not re.fullmatch(r"\d+(\.\d+)?", raw):
        raise AmountError("garbage")
    try:
        value = Decimal(raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise AmountError("garbage") from None
    if value > AMOUNT_MAX:
        raise AmountError("too_large")
    return value


def set_amount(session: AsyncSession, lead: Lead, actor: Actor, amount: Decimal) -> None:
    previous = lead.amount
    lead.amount = amount
    add_event(session, lead, "amount", actor=actor, data={
        "amount": str(amount), "previous": str(previous) if previous is not None else None,
    })
    enqueue_card_edit(session, lead.id)


# ---------------------------------------------------------------------------- relays

LAST_RELAY_IN = select(LeadEvent.created_at).where(
    LeadEvent.lead_id == bindparam("lead_id"), LeadEvent.kind == "relay_in"
).order_by(LeadEvent.id.desc()).limit(1)


@dataclass
class Relay:
    ok: bool
    problem: str | None = None  # anonymized, unreachable, no_chat


async def relay_to_prospect(
    session: AsyncSession, lead: Lead, actor: Actor, text: str, rendered: str
) -> Relay:
    """A manager's reply to a card goes to the prospect (`rendered` is the message they see)."""
    if lead.anonymized:
        return Relay(False, "anonymized")
    if not lead.tg_id:
        return Relay(False, "no_chat")
    prospect = await session.get(Prospect, lead.prospect_id) if lead.prospect_id else None
    if prospect is not None and (prospect.unreachable or prospect.forgotten_at is not None):
        return Relay(False, "unreachable" if prospect.unreachable else "anonymized")
    enqueue_send(session, lead.tg_id, rendered, purpose="relay", lead_id=lead.id)
    add_event(session, lead, "relay_out", actor=actor, text=text[:RELAY_LIMIT])
    return Relay(True)


async def handed_off_lead(session: AsyncSession, prospect: Prospect) -> Lead | None:
    """The prospect's latest lead that managers work on (handed off, not erased)."""
    return await session.scalar(
        select(Lead).where(
            Lead.prospect_id == prospect.id, Lead.handed_off_at.is_not(None), Lead.anonymized.is_(False),
        ).order_by(Lead.id.desc()).limit(1)
    )


def relay_to_staff(session: AsyncSession, lead: Lead, text: str, rendered: str) -> None:
    """What the prospect wrote goes into the staff chat as a reply to their card."""
    enqueue_send(session, STAFF, rendered, purpose="relay", lead_id=lead.id, reply_to_card=True)
    add_event(session, lead, "relay_in", actor=SYSTEM, text=text[:RELAY_LIMIT])


async def relay_from_prospect(session: AsyncSession, lead: Lead, text: str, rendered: str) -> bool:
    """What the prospect wrote after the handoff goes to the managers (always). True when the prospect
    should be told it was passed on: their first message, or the first after `RELAY_ACK_QUIET` without
    one. Decided from the lead's last relayed message in the database, so a restart or another replica
    does not repeat it."""
    last = await session.scalar(LAST_RELAY_IN, {"lead_id": lead.id})
    relay_to_staff(session, lead, text, rendered)
    return last is None or utcnow() - last >= RELAY_ACK_QUIET


# ---------------------------------------------------------------------------- the prospect's menu


async def signal(session: AsyncSession, funnel: Funnel, lead: Lead | None, name: str | None) -> bool:
    """Record a menu signal on the lead (if any); True when it handed the lead off now."""
    if lead is None or not name:
        return False
    return await leads.record_signal(session, funnel, lead, name)


async def request_manager(
    session: AsyncSession, funnel: Funnel, lead: Lead, *, staff_notice: str | None, signal_name: str | None = None
) -> bool:
    """Hand the lead to the managers now. A lead that is already with them gets `staff_notice`
    threaded under its card so somebody notices, unless the card itself is still queued: posted later,
    it carries the request in its history, and the group's sends a minute are kept for other cards.
    True when the card was posted now."""
    handed = await signal(session, funnel, lead, signal_name)
    if not handed:
        already = lead.handed_off_at is not None
        handed = await leads.handoff(session, lead, "manager")
        if already and staff_notice and not await card_waiting(session, lead.id):
            enqueue_send(session, STAFF, staff_notice, purpose="relay", lead_id=lead.id, reply_to_card=True)
    return handed


async def ask_question(
    session: AsyncSession, funnel: Funnel, lead: Lead, text: str, rendered: str, *, signal_name: str | None
) -> bool:
    """The prospect's question from the menu: recorded as a signal, the lead handed off if it was
    not yet ("question"), and the text threaded under the card. True when handed off now."""
    handed = await signal(session, funnel, lead, signal_name)
    if lead.handed_off_at is None:
        handed = await leads.handoff(session, lead, "question") or handed
    relay_to_staff(session, lead, text, rendered)
    return handed


async def manager_leads(session: AsyncSession, funnel: Funnel, manager_id: int, limit: int = 50) -> list[Lead]:
    rows = await session.scalars(
        select(Lead).where(Lead.manager_id == manager_id, Lead.outcome.is_(None)).order_by(Lead.id)
    )
    return [lead for lead in rows.all() if not funnel.has_stage(lead.stage) or is_open(funnel, lead.stage)][:limit]


def repost_card(session: AsyncSession, lead: Lead) -> None:
    """Post the card again at the bottom of the chat (the delivery worker records the new message)."""
    enqueue_card(session, lead.id)


__all__ = [
    "AmountError", "Press", "Relay", "add_note", "ask_question", "handed_off_lead",
    "lead_of_message", "manager_leads", "parse_amount", "press", "relay_from_prospect", "relay_to_prospect",
    "relay_to_staff", "repost_card", "request_manager", "set_amount", "signal",
]
