"""The prospect dialogue as state changes: what an answer does to the conversation, the prospect
row and the drop-off record. Rendering lives in `handlers.dialogue`."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import DialogueRun, Lead, Prospect, utcnow
from bot.services import leads
from funnel import Dialogue, Funnel, Step

CONTACT_KINDS = {"name", "phone", "email"}


@dataclass
class Conversation:
    """The FSM data of a dialogue (persisted by the FSM storage after every update)."""

    step: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    source: str = "direct"
    run_id: int | None = None
    started: float = field(default_factory=time.time)
    editing: bool = False
    lead_id: int | None = None
    pending_manager: bool = False
    verified: bool = False

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Conversation:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


async def begin(session: AsyncSession, dialogue: Dialogue, prospect: Prospect, source: str) -> Conversation:
    run = DialogueRun(prospect_id=prospect.id, source=source)
    session.add(run)
    await session.flush()
    conv = Conversation(source=source, run_id=run.id)
    await enter(session, dialogue, conv, dialogue.first_step())
    return conv


def prefilled(funnel: Funnel, prospect: Prospect, lead: Lead | None) -> dict[str, str]:
    """A returning prospect's earlier answers, so they only change what changed."""
    answers: dict[str, str] = dict(lead.answers or {}) if lead else {}
    for step in funnel.steps:
        value = {"name": prospect.name, "phone": prospect.phone, "email": prospect.email}.get(step.kind)
        if value:
            answers[step.key] = value
    return answers


async def enter(session: AsyncSession, dialogue: Dialogue, conv: Conversation, step: Step | None) -> None:
    """Move the conversation to `step` (None: the summary) and record how far the prospect got."""
    conv.step = step.key if step else None
    run = await session.get(DialogueRun, conv.run_id) if conv.run_id else None
    if run is None:
        return
    if step is None:
        run.last_step = "summary"
        run.max_step_index = max(run.max_step_index, len(dialogue.funnel.steps))
    else:
        run.last_step = step.key
        run.max_step_index = max(run.max_step_index, dialogue.progress(step.key))


def store(conv: Conversation, prospect: Prospect, step: Step, value: str, *, verified: bool = False) -> None:
    conv.answers[step.key] = value
    if step.key in conv.skipped:
        conv.skipped.remove(step.key)
    if step.kind == "name":
        prospect.name = value
    elif step.kind == "phone":
        prospect.phone, prospect.phone_verified = value, verified
        conv.verified = verified
    elif step.kind == "email":
        prospect.email = value


def skip(conv: Conversation, prospect: Prospect, step: Step) -> None:
    conv.answers.pop(step.key, None)
    if step.key not in conv.skipped:
        conv.skipped.append(step.key)
    if step.kind == "email":
        prospect.email = None


def following(dialogue: Dialogue, conv: Conversation, current: Step) -> Step | None:
    """The step after an answer. While editing: the first visible step still unanswered (an edit can
    reveal a new question), else back to the summary."""
    conv.answers = dialogue.prune(conv.answers)
    if conv.editing:
        for step in dialogue.visible_steps(conv.answers):
            if step.kind != "consent" and step.key not in conv.answers and step.key not in conv.skipped:
                return step
        return None
    return dialogue.next_step(current.key, conv.answers)


async def consent(session: AsyncSession, prospect: Prospect, conv: Conversation) -> None:
    prospect.consent_at = utcnow()
    conv.answers["consent"] = "yes"


async def decline(session: AsyncSession, prospect: Prospect, conv: Conversation) -> None:
    """Declining stores nothing personal: the prospect row keeps only the Telegram id to reply."""
    prospect.username = prospect.first_name = prospect.name = prospect.phone = prospect.email = None
    prospect.consent_at = None
    run = await session.get(DialogueRun, conv.run_id) if conv.run_id else None
    if run is not None:
        run.declined = True


async def finish(
    session: AsyncSession, funnel: Funnel, prospect: Prospect, conv: Conversation, locale: str
) -> leads.Submitted:
    submitted = await leads.submit(
        session, funnel, prospect, conv.answers, source=conv.source, locale=locale,
        dialogue_seconds=max(0.0, time.time() - conv.started), lead_id=conv.lead_id,
    )
    run = await session.get(DialogueRun, conv.run_id) if conv.run_id else None
    if run is not None:
        run.completed_at, run.lead_id = utcnow(), submitted.lead.id
    return submitted


async def request_manager(
    session: AsyncSession, funnel: Funnel, prospect: Prospect, conv: Conversation, locale: str
) -> leads.Submitted:
    """`/manager` in the middle of the dialogue: hand off what we have now, whatever the score."""
    submitted = await leads.submit(
        session, funnel, prospect, conv.answers, source=conv.source, locale=locale,
        lead_id=conv.lead_id, handoff_reason="manager",
    )
    conv.lead_id = submitted.lead.id
    conv.pending_manager = False
    return submitted
