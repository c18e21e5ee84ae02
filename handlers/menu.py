"""The prospect's menu after the dialogue (funnel `menu` items), `/manager` outside the dialogue and
the private catch-all: after the handoff, whatever the prospect writes reaches the managers as a
reply to their lead's card.

This router must be included after every other private-chat router: its last handler takes any
private message nobody else wanted.
"""
from __future__ import annotations

from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import cards
from bot.db.models import Lead, Prospect
from bot.i18n import Texts, Translator
from bot.outbox import enqueue_document
from bot.services import staff as svc
from bot.services.leads import open_lead
from bot.settings import Settings
from funnel import Funnel, MenuItem
from handlers.callbacks import MenuCb
from handlers.dialogue import Flow

router = Router(name="menu")
router.message.filter(F.chat.type == "private")
router.callback_query.filter(F.message.chat.type == "private")

MEDIA_KINDS = ("photo", "video", "video_note", "animation", "voice", "audio", "document", "sticker", "contact",
               "location", "venue", "poll", "dice")


class MenuStates(StatesGroup):
    question = State()  # the next message is the prospect's question for the managers


def menu_keyboard(funnel: Funnel, locale: str) -> InlineKeyboardMarkup:
    """One button per funnel menu item (link items open their url)."""
    rows: list[list[InlineKeyboardButton]] = []
    for idx, item in enumerate(funnel.menu):
        label = funnel.label(item.label, locale)
        if item.action == "link" and item.url:
            rows.append([InlineKeyboardButton(text=label, url=item.url)])
        else:
            rows.append([InlineKeyboardButton(text=label, callback_data=MenuCb(idx=idx).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _reply(funnel: Funnel, item: MenuItem | None, locale: str, t: Texts, fallback: str) -> str:
    return escape(funnel.label(item.reply, locale)) if item is not None and item.reply else t(fallback)


def _manager_item(funnel: Funnel) -> MenuItem | None:
    return next((item for item in funnel.menu if item.action == "manager"), None)


def staff_texts(translator: Translator, settings: Settings) -> Texts:
    """Texts posted into the staff chat are in the bot's default language."""
    return translator.for_locale(settings.default_locale)


def describe(message: Message, t: Texts) -> str:
    """What the prospect sent, as plain text: the text, or a "[photo]"-style note plus the caption."""
    if message.text:
        return message.text
    kind = next((k for k in MEDIA_KINDS if getattr(message, k, None) is not None), "other")
    note = t("menu-media", kind=kind)
    return f"{note} {message.caption}" if message.caption else note


def relay_text(lead: Lead, prospect: Prospect, text: str, staff_t: Texts) -> str:
    name = lead.name or prospect.first_name or (f"@{prospect.username}" if prospect.username else "")
    return staff_t("staff-relay-in", id=str(lead.id), name=cards.esc(cards.clip(name, 64)),
                   text=cards.esc(cards.clip(text, svc.RELAY_LIMIT)))


async def _manager(
    session: AsyncSession, funnel: Funnel, prospect: Prospect, staff_t: Texts, *, signal_name: str | None
) -> Lead | None:
    lead = await open_lead(session, prospect.id)
    if lead is None:
        return None
    notice = staff_t("staff-manager-requested", id=str(lead.id))
    await svc.request_manager(session, funnel, lead, staff_notice=notice, signal_name=signal_name)
    return lead


# ---------------------------------------------------------------------------- menu buttons


@router.callback_query(MenuCb.filter())
async def menu_item(
    query: CallbackQuery, callback_data: MenuCb, bot: Bot, state: FSMContext, session: AsyncSession,
    prospect: Prospect, funnel: Funnel, translator: Translator, settings: Settings, locale: str, t: Texts,
) -> None:
    await query.answer()
    chat_id = query.message.chat.id if query.message else prospect.chat_id

    async def say(text: str) -> None:
        await bot.send_message(chat_id, text)

    if not 0 <= callback_data.idx < len(funnel.menu):
        await say(t("menu-unavailable"))
        return
    item = funnel.menu[callback_data.idx]
    lead = await open_lead(session, prospect.id)

    if item.action == "price_list" and item.document is not None:
        enqueue_document(session, chat_id, str(item.document), caption=funnel.label(item.reply, locale) or None,
                         filename=item.document.name, purpose="price_list", lead_id=lead.id if lead else None)
        await svc.signal(session, funnel, lead, item.signal)
        return
    if lead is None:
        await say(t("menu-no-lead"))
        return
    if item.action == "book_demo":
        await svc.signal(session, funnel, lead, item.signal)
        await say(_reply(funnel, item, locale, t, "menu-demo-booked"))
    elif item.action == "ask_question":
        await state.set_state(MenuStates.question)
        await say(_reply(funnel, item, locale, t, "menu-ask-question"))
    elif item.action == "manager":
        await _manager(session, funnel, prospect, staff_texts(translator, settings), signal_name=item.signal)
        await say(_reply(funnel, item, locale, t, "menu-manager-notified"))
    else:  # a link item pressed from an old keyboard, or a future action
        await svc.signal(session, funnel, lead, item.signal)
        if item.url:
            await say(escape(item.url))


# ---------------------------------------------------------------------------- /manager outside the dialogue


@router.message(Command("manager"))
async def manager_command(
    message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect, funnel: Funnel,
    translator: Translator, settings: Settings, locale: str, t: Texts,
) -> None:
    if await state.get_state() == MenuStates.question.state:
        await state.clear()
    lead = await _manager(session, funnel, prospect, staff_texts(translator, settings), signal_name=None)
    if lead is None:
        await message.answer(t("menu-no-lead"))
        return
    await message.answer(_reply(funnel, _manager_item(funnel), locale, t, "menu-manager-notified"))


# ---------------------------------------------------------------------------- the question and the catch-all


@router.message(MenuStates.question, ~F.text.startswith("/"))
async def question(
    message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect, funnel: Funnel,
    translator: Translator, settings: Settings, t: Texts,
) -> None:
    await state.clear()
    lead = await open_lead(session, prospect.id)
    if lead is None:
        await message.answer(t("menu-no-lead"))
        return
    staff_t = staff_texts(translator, settings)
    text = describe(message, staff_t)
    item = next((i for i in funnel.menu if i.action == "ask_question"), None)
    await svc.ask_question(session, funnel, lead, text, relay_text(lead, prospect, text, staff_t),
                           signal_name=item.signal if item else None)
    await message.answer(t("menu-question-sent"))


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message, t: Texts) -> None:
    await message.answer(t("menu-unknown-command"))


@router.message(StateFilter(None, Flow.returning))  # the dialogue clears the "welcome back" offer first
async def catch_all(
    message: Message, session: AsyncSession, prospect: Prospect, translator: Translator, settings: Settings,
    funnel: Funnel, locale: str, t: Texts,
) -> None:
    """After the handoff the prospect talks to the managers through the bot (told so now and then)."""
    if not message.text and not any(getattr(message, kind, None) is not None for kind in MEDIA_KINDS):
        return  # a service message (e.g. the auto-delete timer changed): nothing to say
    lead = await svc.handed_off_lead(session, prospect)
    if lead is None:
        if await open_lead(session, prospect.id) is not None:
            await message.answer(t("menu-hint-menu"), reply_markup=menu_keyboard(funnel, locale))
        else:
            await message.answer(t("menu-hint"))
        return
    staff_t = staff_texts(translator, settings)
    text = describe(message, staff_t)
    if await svc.relay_from_prospect(session, lead, text, relay_text(lead, prospect, text, staff_t)):
        await message.answer(t("menu-relayed"))
