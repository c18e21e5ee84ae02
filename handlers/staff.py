"""The staff chat: card buttons (Take, moves, Lost with a reason), /note, /amount, /lead, /mine and
replies to a card relayed to the prospect.

Every press and command is authorised before anything changes: it must come from the staff chat,
from a manager (`Roles.is_manager`), about an existing lead, from a card that is not out of date,
and ask for an allowed move. A refusal changes nothing and tells the presser why.
"""
from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, User
from sqlalchemy.ext.asyncio import AsyncSession

from bot import cards
from bot.db.models import Lead
from bot.i18n import Texts, Translator
from bot.roles import Roles, StaffChat
from bot.services import staff as svc
from bot.services.leads import Actor
from bot.settings import Settings
from funnel import Funnel
from handlers.callbacks import LeadCb

log = logging.getLogger(__name__)
ALERT_LIMIT = 200  # Telegram's limit for callback answers

router = Router(name="staff")
router.message.filter(F.chat.type.in_({"group", "supergroup"}))


def actor_of(user: User) -> Actor:
    return Actor(user.id, user.full_name[:128])


def _title(funnel: Funnel, key: str | None, locale: str) -> str:
    return cards.stage_title(funnel, key, locale)


async def _refusal(
    chat_id: int | None, user: User | None, bot: Bot, staff: StaffChat, roles: Roles
) -> str | None:
    """The Fluent key of the reason a staff action is refused, or None when it is authorised."""
    if chat_id is None or not staff.is_staff_chat(chat_id):
        return "staff-not-staff-chat"
    if user is None or user.is_bot or not await roles.is_manager(bot, user.id):
        return "staff-not-manager"
    return None


# ---------------------------------------------------------------------------- card buttons


def press_answer(result: svc.Press, funnel: Funnel, t: Texts, locale: str) -> str:
    stage = _title(funnel, result.stage, locale)
    target = _title(funnel, result.target, locale)
    by = result.by or t("staff-by-bot")
    keys = {
        "taken": ("staff-taken", {}),
        "moved": ("staff-moved", {"stage": target}),
        "picker": ("staff-pick-reason", {}),
        "back": ("staff-back", {}),
        "stale": ("staff-stale", {"stage": stage}),
        "not_found": ("staff-lead-not-found", {}),
        "already_taken": ("staff-already-taken", {"name": by}),
        "same": ("staff-already-yours", {}),
        "closed": ("staff-closed", {"stage": stage}),
        "already_moved": ("staff-already-moved", {"stage": stage, "name": by}),
        "not_allowed": ("staff-not-allowed", {"stage": stage, "target": target}),
        "needs_reason": ("staff-needs-reason", {}),
        "bad_reason": ("staff-bad-reason", {}),
    }
    key, params = keys.get(result.code, ("staff-bad-button", {}))
    return t(key, **params)[:ALERT_LIMIT]


@router.callback_query(LeadCb.filter())
async def lead_button(
    query: CallbackQuery, callback_data: LeadCb, bot: Bot, session: AsyncSession, funnel: Funnel,
    staff: StaffChat, roles: Roles, translator: Translator, settings: Settings, locale: str, t: Texts,
) -> None:
    message = query.message
    refusal = await _refusal(message.chat.id if message else None, query.from_user, bot, staff, roles)
    if refusal is not None:
        await query.answer(t(refusal), show_alert=True)
        return
    assert message is not None
    owner = await svc.lead_of_message(session, message.chat.id, message.message_id)
    if owner is not None and owner.id != callback_data.lead:
        await query.answer(t("staff-bad-button"), show_alert=True)
        return
    result = await svc.press(session, funnel, callback_data, actor_of(query.from_user))
    text = press_answer(result, funnel, t, locale)
    if not result.ok and result.code not in ("picker", "back"):
        await query.answer(text, show_alert=True)
        return
    await query.answer(text)
    if result.code in ("picker", "back") and isinstance(message, Message) and result.lead is not None:
        card_locale = settings.default_locale
        card_t = translator.for_locale(card_locale)
        markup = (
            cards.lost_reason_keyboard(funnel, result.lead, card_t, card_locale, result.lost_index)
            if result.code == "picker" else cards.card_keyboard(funnel, result.lead, card_t, card_locale)
        )
        try:
            await message.edit_reply_markup(reply_markup=markup)
        except TelegramAPIError as exc:  # e.g. the message is too old to edit: nothing changed anyway
            log.info("could not edit the keyboard of lead %s card: %s", result.lead.id, type(exc).__name__)


@router.callback_query(F.data.startswith(LeadCb.__prefix__ + LeadCb.__separator__))
async def broken_lead_button(query: CallbackQuery, t: Texts) -> None:
    """A card button whose data does not parse (forged or from an incompatible version)."""
    await query.answer(t("staff-bad-button"), show_alert=True)


# ---------------------------------------------------------------------------- commands


async def _authorised(message: Message, bot: Bot, staff: StaffChat, roles: Roles, t: Texts) -> bool:
    refusal = await _refusal(message.chat.id, message.from_user, bot, staff, roles)
    if refusal is not None:
        await message.reply(t(refusal))
        return False
    return True


async def _card_lead(message: Message, session: AsyncSession, t: Texts) -> Lead | None:
    """The lead of the card this message replies to; says so when it is not a reply to a card."""
    replied = message.reply_to_message
    lead = await svc.lead_of_message(session, message.chat.id, replied.message_id) if replied else None
    if lead is None:
        await message.reply(t("staff-reply-to-card"))
    return lead


@router.message(Command("note"))
async def note(message: Message, command: CommandObject, bot: Bot, session: AsyncSession, staff: StaffChat,
               roles: Roles, t: Texts) -> None:
    if not await _authorised(message, bot, staff, roles, t):
        return
    lead = await _card_lead(message, session, t)
    if lead is None:
        return
    text = (command.args or "").strip()
    if not text:
        await message.reply(t("staff-note-empty"))
        return
    assert message.from_user is not None
    svc.add_note(session, lead, actor_of(message.from_user), text)
    await message.reply(t("staff-note-saved", id=str(lead.id)))


@router.message(Command("amount"))
async def amount(message: Message, command: CommandObject, bot: Bot, session: AsyncSession, staff: StaffChat,
                 roles: Roles, t: Texts) -> None:
    if not await _authorised(message, bot, staff, roles, t):
        return
    lead = await _card_lead(message, session, t)
    if lead is None:
        return
    try:
        value = svc.parse_amount(command.args)
    except svc.AmountError as exc:
        await message.reply(t(f"staff-amount-{exc.code.replace('_', '-')}"))
        return
    assert message.from_user is not None
    svc.set_amount(session, lead, actor_of(message.from_user), value)
    await message.reply(t("staff-amount-set", id=str(lead.id), amount=cards.format_amount(value)))


@router.message(Command("lead"))
async def lead_card(message: Message, command: CommandObject, bot: Bot, session: AsyncSession,
                    staff: StaffChat, roles: Roles, t: Texts) -> None:
    if not await _authorised(message, bot, staff, roles, t):
        return
    arg = (command.args or "").strip().lstrip("#")
    if not arg.isdigit() or len(arg) > 18:
        await message.reply(t("staff-lead-usage"))
        return
    lead = await session.get(Lead, int(arg))
    if lead is None:
        await message.reply(t("staff-lead-not-found"))
        return
    svc.repost_card(session, lead)


@router.message(Command("mine"))
async def mine(message: Message, bot: Bot, session: AsyncSession, funnel: Funnel, staff: StaffChat,
               roles: Roles, locale: str, t: Texts) -> None:
    if not await _authorised(message, bot, staff, roles, t):
        return
    assert message.from_user is not None
    rows = await svc.manager_leads(session, funnel, message.from_user.id)
    if not rows:
        await message.reply(t("staff-mine-empty"))
        return
    lines = [t("staff-mine-title", count=len(rows))]
    size = len(lines[0])
    for lead in rows:
        name = cards.esc(cards.clip(lead.name, 64)) if lead.name and not lead.anonymized else t("card-none")
        line = t("staff-mine-row", id=str(lead.id), name=name,
                 stage=cards.esc(_title(funnel, lead.stage, locale)), score=str(lead.score))
        if size + len(line) + 3 > cards.CARD_LIMIT:
            lines.append(t("card-more"))
            break
        lines.append(line)
        size += len(line) + 1
    await message.reply("\n".join(lines))


# ---------------------------------------------------------------------------- replies to cards


@router.message(F.reply_to_message, ~F.text.startswith("/"))
async def reply_to_card(message: Message, bot: Bot, session: AsyncSession, staff: StaffChat, roles: Roles,
                        translator: Translator, t: Texts) -> None:
    """A manager's reply to a card (or to a message threaded under it) goes to the prospect."""
    replied = message.reply_to_message
    if replied is None or not staff.is_staff_chat(message.chat.id):
        return
    if replied.from_user is None or replied.from_user.id != bot.id:
        return  # a conversation between colleagues
    lead = await svc.lead_of_message(session, message.chat.id, replied.message_id)
    if lead is None:
        return
    if not await _authorised(message, bot, staff, roles, t):
        return
    if not message.text:
        await message.reply(t("staff-relay-text-only"))
        return
    assert message.from_user is not None
    prospect_t = translator.for_locale(lead.locale)
    rendered = prospect_t("staff-to-prospect", manager=cards.esc(cards.clip(message.from_user.first_name, 64)),
                          text=cards.esc(cards.clip(message.text, svc.RELAY_LIMIT)))
    result = await svc.relay_to_prospect(session, lead, actor_of(message.from_user), message.text, rendered)
    if not result.ok:
        await message.reply(t(f"staff-relay-{(result.problem or 'unreachable').replace('_', '-')}"))
        return
    await message.reply(t("staff-relay-sent"))
