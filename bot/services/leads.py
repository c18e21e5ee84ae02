"""Lead operations shared by the dialogue, the menu and the staff buttons.

Nothing here commits: the caller's unit of work does. Every change writes its history event, keeps
`stage_reached` in step (analytics read "reached" from it) and queues the card update in the outbox.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bot.analytics.models import track_stage_change
from bot.db.models import Lead, LeadEvent, Prospect, StageReached, utcnow
from bot.outbox import enqueue_card, enqueue_card_edit, enqueue_send
from funnel import Funnel, ScoreResult, score_lead
from funnel.stages import TransitionError, check_move


@dataclass(frozen=True)
class Actor:
    id: int | None
    name: str | None

    @property
    def is_system(self) -> bool:
        return self.id is None


SYSTEM = Actor(None, None)


@dataclass(frozen=True)
class MoveResult:
    ok: bool
    stage: str  # the lead's stage after the attempt
    problem: str | None = None  # not_allowed, needs_reason, bad_reason, already_moved, not_found, same
    by: str | None = None  # who made the move that won the race
    detail: str | None = None


def add_event(
    session: AsyncSession, lead: Lead, kind: str, *, actor: Actor = SYSTEM, from_stage: str | None = None,
    to_stage: str | None = None, reason: str | None = None, text: str | None = None,
    data: Mapping[str, Any] | None = None, at: datetime | None = None,
) -> LeadEvent:
    event = LeadEvent(
        lead_id=lead.id, kind=kind, from_stage=from_stage, to_stage=to_stage, actor_id=actor.id,
        actor_name=actor.name, reason=reason, text=text, data=dict(data or {}), created_at=at or utcnow(),
    )
    session.add(event)
    return event


# session.info: lead id -> its stage_reached rows, for the leads this transaction created (so the database
# has none of theirs but these): a new lead's placement looks none up (three SELECTs, each with a flush)
NEW_LEADS = "new_leads_stage_rows"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_new_leads(session: Session) -> None:
    session.info.pop(NEW_LEADS, None)


def _new_lead_rows(session: AsyncSession, lead: Lead) -> dict[str, StageReached] | None:
    """The stage rows of `lead` when this transaction created it (all it has), else None."""
    return session.info.get(NEW_LEADS, {}).get(lead.id)


async def _stage_row(session: AsyncSession, lead: Lead, stage: str) -> StageReached | None:
    rows = _new_lead_rows(session, lead)
    if rows is not None:
        return rows.get(stage)
    return await session.get(StageReached, (lead.id, stage))


async def mark_reached(session: AsyncSession, lead: Lead, stage: str, at: datetime, left: str | None) -> None:
    """Record that the lead reached `stage` (first time only) and left `left`; keeps the analytics
    summary tables in step. The lead's outcome and lost reason must already be set."""
    left_row = None
    if left is not None:
        previous = await _stage_row(session, lead, left)
        if previous is not None and previous.left_at is None:
            previous.left_at = at
            left_row = previous
    entered = None
    if await _stage_row(session, lead, stage) is None:
        entered = StageReached(
            lead_id=lead.id, stage=stage, reached_at=at, lead_created_at=lead.created_at, source=lead.source,
        )
        session.add(entered)
        rows = _new_lead_rows(session, lead)
        if rows is not None:
            rows[stage] = entered
    await track_stage_change(session, lead, entered=entered, left=left_row)


def rescore(funnel: Funnel, lead: Lead) -> ScoreResult:
    result = score_lead(
        funnel, answers=lead.answers or {}, phone_verified=lead.phone_verified if lead.phone else None,
        has_email=bool(lead.email), source=lead.source, signals=lead.signals or (),
        dialogue_seconds=lead.dialogue_seconds,
    )
    lead.score, lead.fit, lead.intent, lead.band = result.total, result.fit, result.intent, result.band
    lead.breakdown = [list(item) for item in result.breakdown]
    return result


# built once: building a statement costs more than running it
LAST_LEAD = select(Lead).where(Lead.prospect_id == bindparam("prospect_id")).order_by(Lead.id.desc()).limit(1)
OPEN_LEAD = LAST_LEAD.where(Lead.outcome.is_(None), Lead.anonymized.is_(False))


async def open_lead(session: AsyncSession, prospect_id: int) -> Lead | None:
    return await session.scalar(OPEN_LEAD, {"prospect_id": prospect_id})


async def last_lead(session: AsyncSession, prospect_id: int) -> Lead | None:
    return await session.scalar(LAST_LEAD, {"prospect_id": prospect_id})


def _contact_fields(funnel: Funnel, prospect: Prospect, answers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": prospect.name, "phone": prospect.phone, "phone_verified": prospect.phone_verified,
        "email": prospect.email, "username": prospect.username, "tg_id": prospect.tg_id,
        "answers": {k: v for k, v in answers.items() if funnel.has_step(k)
                    and funnel.step(k).kind in ("choice", "text")},
    }


@dataclass
class Submitted:
    lead: Lead
    created: bool
    score: ScoreResult
    handed_off_now: bool


async def submit(
    session: AsyncSession, funnel: Funnel, prospect: Prospect, answers: Mapping[str, Any], *, source: str,
    locale: str, dialogue_seconds: float | None = None, lead_id: int | None = None,
    handoff_reason: str | None = None,
) -> Submitted:
    """Create the lead for a finished (or, with `handoff_reason="manager"`, partial) dialogue, or
    update the prospect's open lead. A new lead is placed by its score; qualified leads are handed off."""
    now = utcnow()
    lead = await session.get(Lead, lead_id) if lead_id else None
    if lead is not None and lead.outcome is not None:
        lead = None
    if lead is None:
        lead = await open_lead(session, prospect.id)
    fields = _contact_fields(funnel, prospect, answers)
    created = lead is None
    if lead is None:
        previous = await last_lead(session, prospect.id)
        lead = Lead(
            prospect_id=prospect.id, previous_lead_id=previous.id if previous else None, source=source,
            locale=locale, stage=funnel.initial_stage, stage_changed_at=now, created_at=now,
            dialogue_seconds=dialogue_seconds, signals=[], **fields,
        )
        session.add(lead)
        await session.flush()
        session.info.setdefault(NEW_LEADS, {})[lead.id] = {}
        add_event(session, lead, "created", to_stage=funnel.initial_stage, data={"source": source}, at=now)
        await mark_reached(session, lead, funnel.initial_stage, now, None)
    else:
        for key, value in fields.items():
            setattr(lead, key, value)
        lead.locale = locale
        if dialogue_seconds is not None and lead.dialogue_seconds is None:
            lead.dialogue_seconds = dialogue_seconds
    result = rescore(funnel, lead)
    add_event(session, lead, "score", data=result.as_dict(), at=now)

    if lead.stage == funnel.initial_stage and handoff_reason is None:
        target = funnel.qualified_stage if result.qualified else funnel.nurture_stage
        await _place(session, funnel, lead, target, now, result)
    elif lead.stage == funnel.nurture_stage and result.qualified:
        await _place(session, funnel, lead, funnel.qualified_stage, now, result)

    handed = False
    reason = handoff_reason or ("qualified" if result.qualified else None)
    if reason is not None:
        handed = await handoff(session, lead, reason)
    if not handed and lead.card_message_id is not None:
        enqueue_card_edit(session, lead.id)
    return Submitted(lead=lead, created=created, score=result, handed_off_now=handed)


async def _place(
    session: AsyncSession, funnel: Funnel, lead: Lead, target: str, now: datetime, score: ScoreResult
) -> None:
    """The system's placement by score; recorded like any other move."""
    source = lead.stage
    if source == target:
        return
    lead.stage, lead.stage_changed_at = target, now
    add_event(
        session, lead, "stage", from_stage=source, to_stage=target,
        reason="score_qualified" if score.qualified else "score_below_threshold",
        data={"score": score.total, "threshold": funnel.scoring.threshold}, at=now,
    )
    await mark_reached(session, lead, target, now, source)


async def handoff(session: AsyncSession, lead: Lead, reason: str, *, note: str | None = None) -> bool:
    """Hand the lead to the managers: post its card once. Later requests are threaded under the card."""
    now = utcnow()
    add_event(session, lead, "handoff", reason=reason, text=note, at=now)
    if lead.handed_off_at is None:
        lead.handed_off_at, lead.handoff_reason = now, reason  # flushed with the card's row
        enqueue_card(session, lead.id)
        return True
    enqueue_card_edit(session, lead.id)
    return False


async def move_stage(
    session: AsyncSession, funnel: Funnel, lead_id: int, *, expected: str, to: str, actor: Actor,
    reason: str | None = None,
) -> MoveResult:
    """Compare-and-set move: exactly one of two racing presses wins; the other learns who won."""
    lead = await session.get(Lead, lead_id)
    if lead is None:
        return MoveResult(False, "", "not_found")
    try:
        check_move(funnel, expected, to, lost_reason=reason)
    except TransitionError as exc:
        problem = "needs_reason" if "needs a reason" in str(exc) else (
            "bad_reason" if "lost reason" in str(exc) else "not_allowed")
        return MoveResult(False, lead.stage, problem, detail=str(exc))
    now = utcnow()
    target = funnel.stage(to)
    values: dict[str, Any] = {"stage": to, "stage_changed_at": now, "updated_at": now}
    if target.outcome is not None:  # a won stage may still lead on (b2b: deal -> post-sale support)
        values.update(outcome=target.outcome, closed_at=lead.closed_at or now,
                      lost_reason=reason if target.outcome == "lost" else None)
    if not actor.is_system and lead.first_move_at is None:
        values["first_move_at"] = now
    result = await session.execute(
        update(Lead).where(Lead.id == lead_id, Lead.stage == expected).values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(lead)
    if result.rowcount != 1:
        winner = await session.scalar(
            select(LeadEvent).where(LeadEvent.lead_id == lead_id, LeadEvent.kind == "stage")
            .order_by(LeadEvent.id.desc()).limit(1)
        )
        return MoveResult(False, lead.stage, "already_moved", by=winner.actor_name if winner else None)
    add_event(session, lead, "stage", actor=actor, from_stage=expected, to_stage=to, reason=reason, at=now)
    await mark_reached(session, lead, to, now, expected)
    enqueue_card_edit(session, lead.id)
    if target.notify_prospect and lead.tg_id and not lead.anonymized:
        enqueue_send(session, lead.tg_id, funnel.label(target.notify_prospect, lead.locale),
                     purpose="stage_notify", lead_id=lead.id)
    return MoveResult(True, to)


async def assign(session: AsyncSession, lead_id: int, actor: Actor) -> MoveResult:
    """Take: compare-and-set on an unassigned lead."""
    lead = await session.get(Lead, lead_id)
    if lead is None:
        return MoveResult(False, "", "not_found")
    if lead.manager_id == actor.id:
        return MoveResult(False, lead.stage, "same", by=actor.name)
    now = utcnow()
    result = await session.execute(
        update(Lead).where(Lead.id == lead_id, Lead.manager_id.is_(None))
        .values(manager_id=actor.id, manager_name=actor.name, assigned_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(lead)
    if result.rowcount != 1:
        return MoveResult(False, lead.stage, "already_taken", by=lead.manager_name)
    add_event(session, lead, "assign", actor=actor, data={"manager_id": actor.id}, at=now)
    enqueue_card_edit(session, lead.id)
    return MoveResult(True, lead.stage)


async def record_signal(
    session: AsyncSession, funnel: Funnel, lead: Lead, signal: str, *, actor: Actor = SYSTEM
) -> bool:
    """A behaviour signal: scored once, may move the lead (funnel `signal_moves`) and hand it off.
    Returns True when this signal handed the lead off now."""
    signals = list(lead.signals or [])
    first = signal not in signals
    if first:
        signals.append(signal)
        lead.signals = signals
    result = rescore(funnel, lead)
    add_event(session, lead, "signal", actor=actor, reason=signal, data={"score": result.total, "first": first})
    target = funnel.signal_moves.get(signal)
    handed = False
    if target and lead.stage != target and lead.outcome is None and not funnel.stage(lead.stage).terminal:
        now = utcnow()
        source = lead.stage
        lead.stage, lead.stage_changed_at = target, now
        add_event(session, lead, "stage", from_stage=source, to_stage=target, reason=f"signal:{signal}", at=now)
        await mark_reached(session, lead, target, now, source)
        handed = await handoff(session, lead, f"signal:{signal}")
    elif lead.card_message_id is not None or lead.handed_off_at is not None:
        enqueue_card_edit(session, lead.id)
    return handed
