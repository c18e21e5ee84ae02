"""The prospect dialogue as state changes: what an answer does to the conversation, the prospect
row and the drop-off record. Rendering lives in `handlers.dialogue`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Update, bindparam, case, inspect, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot.db.models import DialogueRun, Lead, Prospect, utcnow
from bot.db.tail import Deferred, defer
from bot.services import leads
from funnel import Dialogue, Funnel, Step

CONTACT_KINDS = {"name", "phone", "email"}

# How far a run got, written as one UPDATE per step (no row loaded: the ORM's load, change tracking and
# flush of the run cost more than the rest of a step's statements together), with the update's other
# last writes at its commit (`bot.db.tail`)
_runs = DialogueRun.__table__


def _advance_run(prefix: str) -> Update:
    index = bindparam(prefix + "step_index", type_=Integer)
    return update(_runs).where(_runs.c.id == bindparam(prefix + "run_id")).values(
        last_step=bindparam(prefix + "step_key"),
        max_step_index=case((_runs.c.max_step_index < index, index), else_=_runs.c.max_step_index),
    )


ADVANCE_RUN = Deferred("advance_run", _advance_run)
END_RUN = update(_runs).where(_runs.c.id == bindparam("run_id"))  # SET: the values given


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
        # what dataclasses.asdict gives (answers and skipped copied), without its recursive deep copy
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["answers"], data["skipped"] = dict(self.answers), list(self.skipped)
        return data


async def begin(session: AsyncSession, dialogue: Dialogue, prospect: Prospect, source: str) -> Conversation:
    first = dialogue.first_step()
    last_step, index = _progress(dialogue, first)
    run = DialogueRun(prospect_id=prospect.id, source=source, last_step=last_step, max_step_index=index)
    session.add(run)
    await session.flush()
    return Conversation(step=first.key, source=source, run_id=run.id)


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
    if conv.run_id:
        last_step, index = _progress(dialogue, step)
        defer(session, ADVANCE_RUN, {"run_id": conv.run_id, "step_key": last_step, "step_index": index})


def _progress(dialogue: Dialogue, step: Step | None) -> tuple[str, int]:
    """The run's `last_step` and `max_step_index` on reaching `step` (None: the summary)."""
    if step is None:
        return "summary", len(dialogue.funnel.steps)
    return step.key, dialogue.progress(step.key)


def store(conv: Conversation, prospect: Prospect, step: Step, value: str, *, verified: bool = False) -> None:
    conv.answers[step.key] = value
    if step.key in conv.skipped:
        conv.skipped.remove(step.key)
    if step.kind == "name":
        write_prospect(prospect, name=value)
    elif step.kind == "phone":
        write_prospect(prospect, phone=value, phone_verified=verified)
        conv.verified = verified
    elif step.kind == "email":
        write_prospect(prospect, email=value)


def skip(conv: Conversation, prospect: Prospect, step: Step) -> None:
    conv.answers.pop(step.key, None)
    if step.key not in conv.skipped:
        conv.skipped.append(step.key)
    if step.kind == "email":
        write_prospect(prospect, email=None)


_prospects = Prospect.__table__
_PROSPECT_WRITES: dict[tuple[str, ...], Deferred] = {}


def write_prospect(prospect: Prospect, **values: Any) -> None:
    """Set the prospect's contact fields as the dialogue gathers them: on the object as if already stored,
    and in the database with the update's other last writes (`bot.db.tail`: no ORM flush of its own, and no
    round trip of its own on PostgreSQL). A prospect the ORM has not inserted yet just takes the values.
    The ORM's own changes are flushed before these writes, so a field set here is not set on the object
    again later in the same update (no handler does: the name, phone, e-mail or consent is its last word)."""
    state = inspect(prospect)
    if not state.persistent:
        for column, value in values.items():
            setattr(prospect, column, value)
        return
    values["updated_at"] = utcnow()  # as the column's onupdate would
    columns = tuple(sorted(values))
    write = _PROSPECT_WRITES.get(columns)
    if write is None:
        write = _PROSPECT_WRITES[columns] = Deferred.update(
            "prospect_" + "_".join(columns), _prospects, columns, keys={"id": "prospect_id"})
    for column, value in values.items():
        set_committed_value(prospect, column, value)
    defer(state.session, write, {**values, "prospect_id": prospect.id})


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
    write_prospect(prospect, consent_at=utcnow())
    conv.answers["consent"] = "yes"


async def decline(session: AsyncSession, prospect: Prospect, conv: Conversation) -> None:
    """Declining stores nothing personal: the prospect row keeps only the Telegram id to reply."""
    prospect.username = prospect.first_name = prospect.name = prospect.phone = prospect.email = None
    prospect.consent_at = None
    if conv.run_id:
        await session.execute(END_RUN, {"run_id": conv.run_id, "declined": True})


async def finish(
    session: AsyncSession, funnel: Funnel, prospect: Prospect, conv: Conversation, locale: str
) -> leads.Submitted:
    submitted = await leads.submit(
        session, funnel, prospect, conv.answers, source=conv.source, locale=locale,
        dialogue_seconds=max(0.0, time.time() - conv.started), lead_id=conv.lead_id,
    )
    if conv.run_id:
        await session.execute(END_RUN, {"run_id": conv.run_id, "completed_at": utcnow(), "lead_id": submitted.lead.id})
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
