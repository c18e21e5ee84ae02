"""The staff card of a lead: HTML text and inline keyboard, rendered from the CURRENT database state.

The delivery worker calls `render_card` whenever it posts or edits a card, so a card never shows a
stale stage. Every value that came from a user is escaped; long free texts are clipped and the whole
card is kept under Telegram's 4096 characters. Buttons carry ids and indexes only (`LeadCb`), with
`at` = the index of the stage the card shows, so a press on an out-of-date card is detected.
"""
from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Lead, LeadEvent, utcnow
from bot.i18n import Texts, Translator
from funnel import Funnel, Stage, allowed_moves, is_open
from funnel.model import QUICK_ANSWERS_SIGNAL
from handlers.callbacks import LeadCb

CARD_LIMIT = 4096
FIELD_LIMIT = 300  # one answer / comment on the card
HISTORY_TEXT_LIMIT = 120  # a note or relayed message quoted in the history
HISTORY_SIZE = 5
HIDDEN_EVENTS = ("score",)  # the score has its own section
PROSPECT_EVENTS = ("relay_in",)  # written by the prospect (recorded with the system actor)

# line priorities: 0 is always kept; higher numbers are dropped first when the card is too long
KEEP, ANSWERS, DETAILS, HISTORY = 0, 1, 2, 3


def clip(text: str | None, limit: int) -> str:
    """At most `limit` characters (an ellipsis marks a cut). Clip raw text, then escape it."""
    text = (text or "").strip()
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def format_amount(amount: Decimal | float | str) -> str:
    """12000 -> '12 000', 12000.5 -> '12 000.50' (no locale-specific grouping surprises)."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    text = f"{value:,.2f}".replace(",", "\u202f")
    return text.removesuffix(".00")


def format_time(moment: datetime, tz: tzinfo = UTC, *, short: bool = False) -> str:
    local = moment.astimezone(tz)
    return local.strftime("%d.%m %H:%M") if short else local.strftime("%d.%m.%Y %H:%M %Z").strip()


def stage_index(funnel: Funnel, key: str) -> int:
    try:
        return funnel.stage_index(key)
    except KeyError:  # a stage removed from the funnel file: the card still renders
        return -1


def stage_title(funnel: Funnel, key: str | None, locale: str) -> str:
    if not key:
        return "—"
    try:
        return funnel.label(funnel.stage(key).title, locale)
    except KeyError:
        return key


def signal_label(funnel: Funnel, signal: str, t: Texts, locale: str) -> str:
    for item in funnel.menu:
        if item.signal == signal:
            return funnel.label(item.label, locale)
    if signal == QUICK_ANSWERS_SIGNAL:
        return t("card-signal-quick-answers")
    return signal


def reason_text(funnel: Funnel, reason: str | None, t: Texts, locale: str) -> str:
    """Why the lead was handed off: qualified / manager / question / signal:<name>."""
    if reason in ("qualified", "manager", "question"):
        return t(f"card-why-{reason}")
    if reason and reason.startswith("signal:"):
        return t("card-why-signal", signal=signal_label(funnel, reason.split(":", 1)[1], t, locale))
    return reason or t("card-why-unknown")


def rule_text(funnel: Funnel, rule: str, t: Texts, locale: str) -> str:
    """A scoring rule of the breakdown in words (answer:budget=5k_20k -> 'Budget: $5,000-20,000')."""
    kind, _, rest = rule.partition(":")
    if kind == "answer" and "=" in rest:
        step_key, option_key = rest.split("=", 1)
        if funnel.has_step(step_key):
            step = funnel.step(step_key)
            option = step.option(option_key)
            label = funnel.label(option.label, locale) if option else option_key
            return f"{funnel.label(step.title, locale)}: {label}"
    if rule == "phone:verified":
        return t("card-rule-phone-verified")
    if rule == "phone:unverified":
        return t("card-rule-phone-unverified")
    if rule == "email":
        return t("card-rule-email")
    if kind == "source" and rest:
        return t("card-rule-source", source=rest)
    if kind == "signal" and rest:
        return t("card-rule-signal", signal=signal_label(funnel, rest, t, locale))
    return rule


def lost_reason_label(funnel: Funnel, key: str | None, locale: str) -> str:
    reason = funnel.lost_reason(key) if key else None
    return funnel.label(reason.label, locale) if reason else (key or "—")


def event_text(funnel: Funnel, event: LeadEvent, t: Texts, locale: str) -> str:
    """What happened, in words (escaped HTML)."""
    kind = event.kind
    quote = esc(clip(event.text, HISTORY_TEXT_LIMIT))
    if kind == "created":
        return t("card-event-created", source=esc((event.data or {}).get("source", "")))
    if kind == "stage":
        if event.reason and funnel.lost_reason(event.reason) is not None:
            why = lost_reason_label(funnel, event.reason, locale)
        elif event.reason and event.reason.startswith("signal:"):
            why = signal_label(funnel, event.reason.split(":", 1)[1], t, locale)
        else:
            why = ""
        text = t("card-event-stage", source=esc(stage_title(funnel, event.from_stage, locale)),
                 target=esc(stage_title(funnel, event.to_stage, locale)))
        return f"{text} ({esc(why)})" if why else text
    if kind == "assign":
        return t("card-event-assign")
    if kind == "handoff":
        return t("card-event-handoff", reason=esc(reason_text(funnel, event.reason, t, locale)))
    if kind == "signal":
        return t("card-event-signal", signal=esc(signal_label(funnel, event.reason or "", t, locale)))
    if kind == "note":
        return t("card-event-note", text=quote)
    if kind == "amount":
        raw = (event.data or {}).get("amount")
        return t("card-event-amount", amount=esc(format_amount(raw)) if raw is not None else "—")
    if kind == "relay_in":
        return t("card-event-relay-in", text=quote)
    if kind == "relay_out":
        return t("card-event-relay-out", text=quote)
    if kind == "unreachable":
        return t("card-event-unreachable")
    if kind == "reachable":
        return t("card-event-reachable")
    if kind == "erased":
        return t("card-event-erased")
    return esc(kind)


def event_actor(event: LeadEvent, t: Texts) -> str:
    if event.kind in PROSPECT_EVENTS:
        return t("card-actor-prospect")
    if event.actor_id is None:
        return t("card-actor-system")
    return esc(clip(event.actor_name, 64) or str(event.actor_id))


async def recent_events(session: AsyncSession, lead_id: int, limit: int = HISTORY_SIZE) -> list[LeadEvent]:
    rows = await session.scalars(
        select(LeadEvent).where(LeadEvent.lead_id == lead_id, LeadEvent.kind.not_in(HIDDEN_EVENTS))
        .order_by(LeadEvent.id.desc()).limit(limit)
    )
    return list(reversed(rows.all()))


def _telegram_link(lead: Lead, t: Texts) -> str | None:
    if lead.username:
        return "@" + esc(lead.username)
    if lead.tg_id:
        return f'<a href="tg://user?id={int(lead.tg_id)}">{t("card-telegram-profile")}</a>'
    return None


def _fit(lines: list[tuple[str, int]], limit: int, more: str) -> str:
    """Join the lines; while too long drop the least important ones, the last first (history, then
    details, then answers) and mark the cut with `more`."""
    lines = list(lines)

    def size() -> int:
        return sum(len(line) + 1 for line, _ in lines) - 1

    if size() <= limit:
        return "\n".join(line for line, _ in lines)
    lines.append((more, KEEP))
    for priority in (HISTORY, DETAILS, ANSWERS):
        while size() > limit:
            index = next((i for i in range(len(lines) - 1, -1, -1) if lines[i][1] == priority), None)
            if index is None:
                break
            del lines[index]
    while size() > limit and len(lines) > 1:  # cannot happen with clipped fields: a last resort
        del lines[-2]
    return "\n".join(line for line, _ in lines)


async def render_card_text(
    session: AsyncSession, lead: Lead, *, funnel: Funnel, translator: Translator, locale: str,
    tz: tzinfo = UTC, now: datetime | None = None,
) -> str:
    t = translator.for_locale(locale)
    now = now or utcnow()
    lines: list[tuple[str, int]] = []

    def add(text: str, priority: int = KEEP) -> None:
        lines.append((text, priority))

    add(t("card-title", id=str(lead.id)))
    if lead.handed_off_at is not None or lead.handoff_reason:
        add(t("card-why", reason=esc(reason_text(funnel, lead.handoff_reason, t, locale))))
    add("")

    if lead.anonymized:
        add(t("card-anonymized"))
    else:
        add(t("card-name", name=esc(clip(lead.name, 128)) if lead.name else t("card-none")))
        if lead.phone:
            key = "card-phone-verified" if lead.phone_verified else "card-phone-unverified"
            add(t(key, phone=esc(clip(lead.phone, 32))))
        if lead.email:
            add(t("card-email", email=esc(clip(lead.email, 128))))
        link = _telegram_link(lead, t)
        if link:
            add(t("card-telegram", link=link))
    add(t("card-source", source=esc(clip(lead.source, 64))))

    answers = lead.answers or {}
    if answers and not lead.anonymized:
        add("")
        add(t("card-answers-title"), ANSWERS)
        for step in funnel.steps:
            value = answers.get(step.key)
            if step.kind not in ("choice", "text") or value in (None, ""):
                continue
            title = esc(funnel.label(step.title, locale))
            if step.kind == "choice":
                option = step.option(str(value))
                label = funnel.label(option.label, locale) if option else str(value)
                add(t("card-answer", title=title, value=esc(label)), ANSWERS)
            else:
                add(t("card-comment", title=title, value=esc(clip(str(value), FIELD_LIMIT))), ANSWERS)

    add("")
    band = next((b for b in funnel.scoring.bands if b.key == lead.band), None) or funnel.scoring.band(lead.score)
    add(t("card-score", score=str(lead.score), band=esc(funnel.label(band.title, locale)), fit=str(lead.fit),
          intent=str(lead.intent)))
    for item in lead.breakdown or []:
        try:
            rule, points = str(item[0]), int(item[1])
        except (TypeError, ValueError, IndexError):
            continue
        sign = "+" if points >= 0 else "−"
        add(t("card-rule", rule=esc(rule_text(funnel, rule, t, locale)), points=f"{sign}{abs(points)}"), DETAILS)

    add("")
    add(t("card-stage", stage=esc(stage_title(funnel, lead.stage, locale))))
    stage = funnel.stage(lead.stage) if funnel.has_stage(lead.stage) else None
    if stage is not None and stage.sla_hours and not stage.terminal and lead.outcome is None:
        deadline = lead.stage_changed_at + timedelta(hours=stage.sla_hours)
        key = "card-sla-overdue" if now > deadline else "card-sla"
        add(t(key, deadline=format_time(deadline, tz)))
    if lead.outcome == "lost" and lead.lost_reason:
        add(t("card-lost-reason", reason=esc(lost_reason_label(funnel, lead.lost_reason, locale))))
    if stage is not None and stage.playbook:
        add(t("card-playbook", text=esc(clip(funnel.label(stage.playbook, locale), 800))), DETAILS)
    if lead.manager_id is not None:
        add(t("card-manager", name=esc(clip(lead.manager_name, 64) or str(lead.manager_id))))
    else:
        add(t("card-manager-none"))
    if lead.amount is not None:
        add(t("card-amount", amount=esc(format_amount(lead.amount))))
    add(t("card-created", at=format_time(lead.created_at, tz)))

    events = await recent_events(session, lead.id)
    if events:
        add("", HISTORY)
        add(t("card-history-title"), HISTORY)
        for event in events:
            add(t("card-history-entry", at=format_time(event.created_at, tz, short=True),
                  who=event_actor(event, t), what=event_text(funnel, event, t, locale)), HISTORY)
    return _fit(lines, CARD_LIMIT, t("card-more"))


# ---------------------------------------------------------------------------- keyboards


def _lost_stages(funnel: Funnel, key: str) -> list[Stage]:
    return [stage for stage in allowed_moves(funnel, key) if stage.outcome == "lost"]


def card_keyboard(funnel: Funnel, lead: Lead, t: Texts, locale: str) -> InlineKeyboardMarkup:
    """Take (unassigned open leads), one button per allowed move, Won where allowed, Lost (reason picker)."""
    if not funnel.has_stage(lead.stage):
        return InlineKeyboardMarkup(inline_keyboard=[])
    at = funnel.stage_index(lead.stage)
    rows: list[list[InlineKeyboardButton]] = []
    if lead.manager_id is None and is_open(funnel, lead.stage):
        rows.append([InlineKeyboardButton(
            text=t("card-btn-take"), callback_data=LeadCb(action="t", lead=lead.id, at=at).pack())])
    moves: list[InlineKeyboardButton] = []
    closing: list[InlineKeyboardButton] = []
    for stage in allowed_moves(funnel, lead.stage):
        title = funnel.label(stage.title, locale)
        index = funnel.stage_index(stage.key)
        if stage.outcome == "lost":
            closing.append(InlineKeyboardButton(
                text=t("card-btn-lost", stage=title),
                callback_data=LeadCb(action="l", lead=lead.id, at=at, to=index).pack()))
        elif stage.outcome == "won":
            closing.insert(0, InlineKeyboardButton(
                text=t("card-btn-won", stage=title),
                callback_data=LeadCb(action="m", lead=lead.id, at=at, to=index).pack()))
        else:
            moves.append(InlineKeyboardButton(
                text=t("card-btn-move", stage=title),
                callback_data=LeadCb(action="m", lead=lead.id, at=at, to=index).pack()))
    rows.extend(moves[i:i + 2] for i in range(0, len(moves), 2))
    if closing:
        rows.append(closing)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def lost_reason_keyboard(funnel: Funnel, lead: Lead, t: Texts, locale: str, lost_index: int) -> InlineKeyboardMarkup:
    """The reason picker shown instead of the card keyboard after Lost: one button per reason + Back."""
    at = stage_index(funnel, lead.stage)
    rows = [
        [InlineKeyboardButton(
            text=funnel.label(reason.label, locale),
            callback_data=LeadCb(action="x", lead=lead.id, at=at, to=lost_index, reason=i).pack())]
        for i, reason in enumerate(funnel.lost_reasons)
    ]
    rows.append([InlineKeyboardButton(
        text=t("card-btn-back"), callback_data=LeadCb(action="b", lead=lead.id, at=at).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def render_card(
    session: AsyncSession, lead: Lead, *, funnel: Funnel, translator: Translator, locale: str,
    tz: tzinfo = UTC, now: datetime | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The card text (HTML, < 4096 chars) and its keyboard for the lead as it is in the database now."""
    text = await render_card_text(session, lead, funnel=funnel, translator=translator, locale=locale, tz=tz, now=now)
    return text, card_keyboard(funnel, lead, translator.for_locale(locale), locale)


__all__ = [
    "CARD_LIMIT", "card_keyboard", "clip", "esc", "format_amount", "format_time", "lost_reason_keyboard",
    "recent_events", "render_card", "render_card_text", "stage_title",
]
