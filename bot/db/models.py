"""SQLAlchemy 2 models. Times are stored as UTC and always come back timezone-aware."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Naive UTC in the database (portable between SQLite and PostgreSQL), aware UTC in Python."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Prospect(Base):
    """A Telegram user who talks to the bot in private chat."""

    __tablename__ = "prospects"

    id: Mapped[int] = mapped_column(primary_key=True)
    tg_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    tg_language: Mapped[str | None] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(16))  # chosen with /language
    name: Mapped[str | None] = mapped_column(String(256))
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(320))
    consent_at: Mapped[datetime | None]
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)  # blocked the bot (403)
    forgotten_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Lead(Base):
    """One request from a prospect, scored and placed in a funnel stage."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(primary_key=True)
    prospect_id: Mapped[int | None] = mapped_column(ForeignKey("prospects.id", ondelete="SET NULL"), index=True)
    previous_lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    source: Mapped[str] = mapped_column(String(64), default="direct")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # contact snapshot (erased by /forget)
    name: Mapped[str | None] = mapped_column(String(256))
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(320))
    username: Mapped[str | None] = mapped_column(String(64))
    tg_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signals: Mapped[list[Any]] = mapped_column(default=list)
    # scoring
    score: Mapped[int] = mapped_column(Integer, default=0)
    fit: Mapped[int] = mapped_column(Integer, default=0)
    intent: Mapped[int] = mapped_column(Integer, default=0)
    band: Mapped[str | None] = mapped_column(String(32))
    breakdown: Mapped[list[Any]] = mapped_column(default=list)
    dialogue_seconds: Mapped[float | None] = mapped_column(Float)
    # funnel
    stage: Mapped[str] = mapped_column(String(32))
    stage_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(8))  # won / lost
    lost_reason: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    closed_at: Mapped[datetime | None]
    # handoff
    handoff_reason: Mapped[str | None] = mapped_column(String(64))  # qualified / manager / signal:<key>
    handed_off_at: Mapped[datetime | None]
    manager_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    manager_name: Mapped[str | None] = mapped_column(String(128))
    assigned_at: Mapped[datetime | None]
    first_move_at: Mapped[datetime | None]
    card_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    anonymized: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_leads_stage_created_amount", "stage", "created_at", "amount"),  # weighted pipeline
        Index("ix_leads_source_created", "source", "created_at"),
        Index("ix_leads_card", "card_chat_id", "card_message_id"),
    )


class LeadEvent(Base):
    """Append-only history of everything that happened to a lead."""

    __tablename__ = "lead_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    # created, stage, assign, handoff, signal, note, amount, relay_in, relay_out, score, erased, unreachable,
    # reachable
    kind: Mapped[str] = mapped_column(String(16))
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # None: the system
    actor_name: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class StageReached(Base):
    """First time each lead reached each stage (kept in step with stage events, used by analytics)."""

    __tablename__ = "stage_reached"

    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    reached_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    lead_created_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_stage_reached_created", "lead_created_at", "stage"),)


class DialogueRun(Base):
    """One pass of a prospect through the dialogue, for drop-off analytics."""

    __tablename__ = "dialogue_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    prospect_id: Mapped[int | None] = mapped_column(ForeignKey("prospects.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(64), default="direct")
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_step: Mapped[str | None] = mapped_column(String(32))
    max_step_index: Mapped[int] = mapped_column(Integer, default=-1)
    completed_at: Mapped[datetime | None]
    declined: Mapped[bool] = mapped_column(Boolean, default=False)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))


class FSMRecord(Base):
    """aiogram FSM state and data, one row per storage key."""

    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedUpdate(Base):
    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # the direct replies the handler made, sent after the commit; kept so that an update delivered again
    # after a crash between the commit and the sends gets them again (bot.replies)
    replies: Mapped[list[Any] | None] = mapped_column(default=None)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)  # whose replies (/forget)


class ProcessedMessage(Base):
    __tablename__ = "processed_messages"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OutboxMessage(Base):
    """A message that matters, written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    # send (pre-rendered text/markup), document, photo, card (post a lead card), card_edit (re-render it)
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32), default="notify")  # card, relay, notify, digest...
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # None: the staff chat at send time
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending, sending, sent, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)


class DeadLetter(Base):
    """An update whose handler raised: kept with the error so nothing is silently dropped."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    update_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    update: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KeyValue(Base):
    """Small runtime facts that must survive restarts (e.g. the staff chat id after a migration)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


__all__ = [
    "Base",
    "DeadLetter",
    "DialogueRun",
    "FSMRecord",
    "KeyValue",
    "Lead",
    "LeadEvent",
    "OutboxMessage",
    "ProcessedMessage",
    "ProcessedUpdate",
    "Prospect",
    "StageReached",
    "UniqueConstraint",
    "utcnow",
]
