"""The prospect dialogue: /start with a deep-link source, consent, contact details, intent
questions, summary with Confirm/Edit. Steps and questions come from the funnel file."""
from __future__ import annotations

import weakref
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Prospect
from bot.i18n import Texts
from bot.services import dialogue as svc
from bot.services import leads
from bot.validation import deep_link_source, normalize_email, normalize_phone
from funnel import Dialogue, Funnel, Step, check_text
from handlers.callbacks import AnswerCb, NavCb

router = Router(name="dialogue")
router.message.filter(F.chat.type == "private")
router.callback_query.filter(F.message.chat.type == "private")


class Flow(StatesGroup):
    step = State()
    summary = State()
    edit_pick = State()
    returning = State()


IN_DIALOGUE = StateFilter(Flow.step, Flow.summary, Flow.edit_pick)


@router.callback_query(lambda query: not isinstance(query.message, Message))
async def too_old(query: CallbackQuery, t: Texts) -> None:
    """A press under a message Telegram no longer shows us (older than 48 hours)."""
    await query.answer(t("stale-button"))


# ---------------------------------------------------------------- rendering

def _button(text: str, data: Any) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=text, callback_data=data.pack())]


Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None
# A step's keyboard is the same for everyone who sees it in a language, with or without Back, editing or
# not: built once (a keyboard's buttons, callback data and pydantic models were a twentieth of an answer's
# CPU). Per dialogue (one per app), so a second app in the process never sees another funnel's keyboards.
_MARKUPS: weakref.WeakKeyDictionary[Dialogue, dict[tuple[str, str, bool, bool], Markup]] = (
    weakref.WeakKeyDictionary()
)


def step_markup(dialogue: Dialogue, step: Step, conv: svc.Conversation, locale: str, t: Texts) -> Markup:
    back = dialogue.previous_step(step.key, conv.answers) is not None and not conv.editing
    key = (step.key, locale, back, conv.editing)
    built = _MARKUPS.setdefault(dialogue, {})
    if key not in built:
        built[key] = _step_markup(dialogue, step, back, conv.editing, locale, t)
    return built[key]


def _step_markup(dialogue: Dialogue, step: Step, back: bool, editing: bool, locale: str, t: Texts) -> Markup:
    funnel = dialogue.funnel
    if step.kind == "consent":
        return InlineKeyboardMarkup(inline_keyboard=[
            _button(t("consent-yes"), NavCb(action="consent_yes")),
            _button(t("consent-no"), NavCb(action="consent_no")),
        ])
    if step.kind == "phone":
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=t("phone-share-button"), request_contact=True)]],
            resize_keyboard=True, one_time_keyboard=True, input_field_placeholder=t("phone-placeholder"),
        )
    rows: list[list[InlineKeyboardButton]] = []
    if step.kind == "choice":
        rows = [_button(funnel.label(o.label, locale), AnswerCb(step=step.key, idx=i))
                for i, o in enumerate(step.options)]
    nav: list[InlineKeyboardButton] = []
    if back:
        nav.append(InlineKeyboardButton(text=t("nav-back"), callback_data=NavCb(action="back", step=step.key).pack()))
    if step.optional:
        nav.append(InlineKeyboardButton(text=t("nav-skip"), callback_data=NavCb(action="skip", step=step.key).pack()))
    if editing:
        nav.append(InlineKeyboardButton(text=t("nav-to-summary"),
                                        callback_data=NavCb(action="summary", step=step.key).pack()))
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def step_text(dialogue: Dialogue, step: Step, conv: svc.Conversation, locale: str, t: Texts) -> str:
    funnel = dialogue.funnel
    prompt = escape(funnel.label(step.prompt, locale))
    if step.kind == "consent":
        greeting = escape(funnel.text("greeting", locale))
        return f"{greeting}\n\n{escape(funnel.text('privacy', locale))}\n\n{prompt}"
    visible = [s for s in dialogue.visible_steps(conv.answers) if s.kind != "consent"]
    keys = [s.key for s in visible]
    position = t("step-progress", current=keys.index(step.key) + 1, total=len(keys)) if step.key in keys else ""
    current = conv.answers.get(step.key)
    hint = ""
    if conv.editing and current:
        hint = "\n" + t("edit-current-answer", answer=escape(dialogue.answer_label(step, current, locale)))
    return f"{position}{prompt}{hint}"


async def ask(message: Message, dialogue: Dialogue, step: Step, conv: svc.Conversation, locale: str,
              t: Texts, *, prefix: str | None = None) -> None:
    text = step_text(dialogue, step, conv, locale, t)
    if prefix:
        text = f"{prefix}\n\n{text}"
    await message.answer(text, reply_markup=step_markup(dialogue, step, conv, locale, t))


def summary_view(dialogue: Dialogue, conv: svc.Conversation, locale: str, t: Texts
                 ) -> tuple[str, InlineKeyboardMarkup]:
    funnel = dialogue.funnel
    lines = [f"<b>{escape(funnel.text('summary_title', locale))}</b>", ""]
    for title, value in dialogue.summary(conv.answers, locale):
        lines.append(f"<b>{escape(title)}:</b> {escape(value)}")
    phone_step = funnel.step_of_kind("phone")
    if phone_step and conv.answers.get(phone_step.key):
        lines.append(t("summary-phone-verified") if conv.verified else t("summary-phone-unverified"))
    markup = InlineKeyboardMarkup(inline_keyboard=[
        _button(t("summary-confirm"), NavCb(action="confirm")),
        _button(t("summary-edit"), NavCb(action="edit")),
    ])
    return "\n".join(lines), markup


async def show_summary(message: Message, state: FSMContext, dialogue: Dialogue, conv: svc.Conversation,
                       locale: str, t: Texts) -> None:
    conv.editing = False
    await state.set_state(Flow.summary)
    await state.set_data(conv.to_data())
    text, markup = summary_view(dialogue, conv, locale, t)
    await message.answer(text, reply_markup=markup)


async def load(state: FSMContext) -> svc.Conversation:
    return svc.Conversation.from_data(await state.get_data())


async def go_to(message: Message, state: FSMContext, session: AsyncSession, dialogue: Dialogue,
                conv: svc.Conversation, step: Step | None, locale: str, t: Texts,
                *, prefix: str | None = None) -> None:
    """Enter `step` (or the summary when None), persist, and prompt."""
    await svc.enter(session, dialogue, conv, step)
    if step is None:
        if prefix:
            await message.answer(prefix, reply_markup=ReplyKeyboardRemove())
        await show_summary(message, state, dialogue, conv, locale, t)
        return
    await state.set_state(Flow.step)
    await state.set_data(conv.to_data())
    await ask(message, dialogue, step, conv, locale, t, prefix=prefix)


async def after_answer(message: Message, state: FSMContext, session: AsyncSession, dialogue: Dialogue,
                       conv: svc.Conversation, step: Step, locale: str, t: Texts) -> None:
    nxt = svc.following(dialogue, conv, step)
    if step.kind == "phone":
        # a reply keyboard can only be removed by a message of its own
        await message.answer(t("phone-saved"), reply_markup=ReplyKeyboardRemove())
    await go_to(message, state, session, dialogue, conv, nxt, locale, t)


# ---------------------------------------------------------------- start, returning prospects

@router.message(CommandStart())
async def start(message: Message, command: CommandObject, state: FSMContext, session: AsyncSession,
                prospect: Prospect, funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts) -> None:
    current = await state.get_state()
    if current in (Flow.step.state, Flow.summary.state, Flow.edit_pick.state):
        conv = await load(state)
        await message.answer(t("dialogue-resumed"))
        await resume(message, state, session, dialogue, conv, locale, t)
        return
    source = deep_link_source(command.args)
    previous = await leads.last_lead(session, prospect.id) if prospect.consent_at else None
    if previous is not None and prospect.name and not previous.anonymized:
        await state.set_state(Flow.returning)
        await state.set_data({"source": source})
        await message.answer(
            escape(funnel.text("returning", locale, name=prospect.name)),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[
                _button(t("returning-update"), NavCb(action="update")),
                _button(t("returning-keep"), NavCb(action="keep")),
            ]),
        )
        return
    conv = await svc.begin(session, dialogue, prospect, source)
    await go_to(message, state, session, dialogue, conv, dialogue.first_step(), locale, t)


async def resume(message: Message, state: FSMContext, session: AsyncSession, dialogue: Dialogue,
                 conv: svc.Conversation, locale: str, t: Texts) -> None:
    if await state.get_state() == Flow.step.state and conv.step:
        await ask(message, dialogue, dialogue.funnel.step(conv.step), conv, locale, t)
    else:
        await show_summary(message, state, dialogue, conv, locale, t)


@router.callback_query(Flow.returning, NavCb.filter(F.action.in_({"update", "keep"})))
async def returning_choice(query: CallbackQuery, callback_data: NavCb, state: FSMContext, session: AsyncSession,
                           prospect: Prospect, funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts) -> None:
    await query.answer()
    message = query.message
    assert isinstance(message, Message)
    await message.edit_reply_markup(reply_markup=None)
    if callback_data.action == "keep":
        from handlers.menu import menu_keyboard

        await state.clear()
        await message.answer(escape(funnel.text("menu_title", locale)), reply_markup=menu_keyboard(funnel, locale))
        return
    data = await state.get_data()
    lead = await leads.open_lead(session, prospect.id)
    conv = await svc.begin(session, dialogue, prospect, data.get("source") or (lead.source if lead else "direct"))
    base = lead or await leads.last_lead(session, prospect.id)
    conv.answers = dialogue.prune({"consent": "yes", **svc.prefilled(funnel, prospect, base)})
    conv.verified = bool(prospect.phone_verified)
    conv.lead_id = lead.id if lead else None
    nxt = svc.following(dialogue, svc.Conversation(editing=True, answers=conv.answers, skipped=conv.skipped),
                        dialogue.first_step())
    conv.editing = nxt is not None
    await go_to(message, state, session, dialogue, conv, nxt, locale, t)


# ---------------------------------------------------------------- consent

@router.callback_query(Flow.step, NavCb.filter(F.action.in_({"consent_yes", "consent_no"})))
async def consent(query: CallbackQuery, callback_data: NavCb, state: FSMContext, session: AsyncSession,
                  prospect: Prospect, funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    message = query.message
    assert isinstance(message, Message)
    if conv.step != dialogue.first_step().key:
        await query.answer(t("stale-button"))
        return
    await query.answer()
    await message.edit_reply_markup(reply_markup=None)
    if callback_data.action == "consent_no":
        await svc.decline(session, prospect, conv)
        await state.clear()
        await message.answer(escape(funnel.text("consent_declined", locale)))
        return
    await svc.consent(session, prospect, conv)
    if conv.pending_manager:
        await svc.request_manager(session, funnel, prospect, conv, locale)
        await message.answer(t("manager-requested"))
    await after_answer(message, state, session, dialogue, conv, dialogue.first_step(), locale, t)


# ---------------------------------------------------------------- answers

@router.callback_query(Flow.step, AnswerCb.filter())
async def choice(query: CallbackQuery, callback_data: AnswerCb, state: FSMContext, session: AsyncSession,
                 prospect: Prospect, dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    step = dialogue.funnel.step(conv.step) if conv.step else None
    if step is None or step.key != callback_data.step or not 0 <= callback_data.idx < len(step.options):
        await query.answer(t("stale-button"))
        return
    option = step.options[callback_data.idx]
    await query.answer()
    message = query.message
    assert isinstance(message, Message)
    label = dialogue.funnel.label(option.label, locale)
    await message.edit_text(f"{step_text(dialogue, step, conv, locale, t)}\n\n✅ {escape(label)}")
    svc.store(conv, prospect, step, option.key)
    await after_answer(message, state, session, dialogue, conv, step, locale, t)


@router.callback_query(Flow.step, NavCb.filter(F.action.in_({"back", "skip", "summary"})))
async def navigate(query: CallbackQuery, callback_data: NavCb, state: FSMContext, session: AsyncSession,
                   prospect: Prospect, dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    message = query.message
    assert isinstance(message, Message)
    if conv.step != callback_data.step or conv.step is None:
        await query.answer(t("stale-button"))
        return
    step = dialogue.funnel.step(conv.step)
    if callback_data.action == "back":
        target = dialogue.previous_step(step.key, conv.answers)
        if target is None:
            await query.answer(t("stale-button"))
            return
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await go_to(message, state, session, dialogue, conv, target, locale, t)
        return
    if callback_data.action == "summary":
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await go_to(message, state, session, dialogue, conv, None, locale, t)
        return
    if not step.optional:
        await query.answer(t("stale-button"))
        return
    await query.answer()
    await message.edit_reply_markup(reply_markup=None)
    svc.skip(conv, prospect, step)
    await after_answer(message, state, session, dialogue, conv, step, locale, t)


@router.message(Flow.step, F.contact)
async def contact(message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect,
                  dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    step = dialogue.funnel.step(conv.step) if conv.step else None
    if step is None or step.kind != "phone":
        await reprompt(message, dialogue, conv, locale, t, "input-unexpected-contact")
        return
    assert message.contact is not None and message.from_user is not None
    phone = normalize_phone(message.contact.phone_number, locale)
    if phone is None:
        await reprompt(message, dialogue, conv, locale, t, "phone-invalid")
        return
    verified = message.contact.user_id == message.from_user.id
    svc.store(conv, prospect, step, phone, verified=verified)
    if not verified:
        await message.answer(t("phone-not-own"))
    await after_answer(message, state, session, dialogue, conv, step, locale, t)


@router.message(Flow.step, F.text, ~F.text.startswith("/"))
async def text_answer(message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect,
                      dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    step = dialogue.funnel.step(conv.step) if conv.step else None
    assert message.text is not None
    if step is None:
        return
    if step.kind in ("consent", "choice"):
        await reprompt(message, dialogue, conv, locale, t, "input-use-buttons")
        return
    if step.kind == "phone":
        phone = normalize_phone(message.text, locale)
        if phone is None:
            await reprompt(message, dialogue, conv, locale, t, "phone-invalid")
            return
        svc.store(conv, prospect, step, phone, verified=False)
    elif step.kind == "email":
        email = normalize_email(message.text)
        if email is None:
            await reprompt(message, dialogue, conv, locale, t, "email-invalid")
            return
        svc.store(conv, prospect, step, email)
    else:
        verdict = check_text(step, message.text)
        if verdict != "ok":
            key = "input-too-long" if verdict == "too_long" else "input-empty"
            await reprompt(message, dialogue, conv, locale, t, key, limit=step.max_length)
            return
        svc.store(conv, prospect, step, message.text.strip())
    await after_answer(message, state, session, dialogue, conv, step, locale, t)


@router.message(Flow.step, ~F.text)
async def not_text(message: Message, state: FSMContext, dialogue: Dialogue, locale: str, t: Texts) -> None:
    """A sticker, photo, voice, location... where the step expects text or a button."""
    conv = await load(state)
    step = dialogue.funnel.step(conv.step) if conv.step else None
    key = "input-use-buttons" if step is not None and step.kind in ("consent", "choice") else "input-need-text"
    if step is not None and step.kind == "phone":
        key = "phone-need-contact"
    await reprompt(message, dialogue, conv, locale, t, key)


async def reprompt(message: Message, dialogue: Dialogue, conv: svc.Conversation, locale: str, t: Texts,
                   key: str, **kw: Any) -> None:
    """A short, specific complaint, then the same question again; nothing already given is lost."""
    if conv.step is None:
        await message.answer(t(key, **kw))
        return
    await ask(message, dialogue, dialogue.funnel.step(conv.step), conv, locale, t, prefix=t(key, **kw))


# ---------------------------------------------------------------- summary and edit

@router.callback_query(Flow.summary, NavCb.filter(F.action == "confirm"))
async def confirm(query: CallbackQuery, state: FSMContext, session: AsyncSession, prospect: Prospect,
                  funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts) -> None:
    await query.answer()
    message = query.message
    assert isinstance(message, Message)
    conv = await load(state)
    if not dialogue.is_complete(conv.answers):
        step = next(s for s in dialogue.visible_steps(conv.answers)
                    if not s.optional and not conv.answers.get(s.key))
        await go_to(message, state, session, dialogue, conv, step, locale, t, prefix=t("summary-incomplete"))
        return
    await message.edit_reply_markup(reply_markup=None)
    await svc.finish(session, funnel, prospect, conv, locale)
    await state.clear()
    from handlers.menu import menu_keyboard

    await message.answer(escape(funnel.text("thanks", locale)), reply_markup=menu_keyboard(funnel, locale))


@router.callback_query(Flow.summary, NavCb.filter(F.action == "edit"))
async def edit(query: CallbackQuery, state: FSMContext, dialogue: Dialogue, locale: str, t: Texts) -> None:
    await query.answer()
    conv = await load(state)
    message = query.message
    assert isinstance(message, Message)
    rows = [_button(dialogue.funnel.label(s.title, locale), NavCb(action="edit_step", step=s.key))
            for s in dialogue.editable_steps(conv.answers)]
    rows.append(_button(t("nav-to-summary"), NavCb(action="summary")))
    await state.set_state(Flow.edit_pick)
    await message.edit_reply_markup(reply_markup=None)
    await message.answer(t("edit-pick"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


@router.callback_query(Flow.edit_pick, NavCb.filter(F.action.in_({"edit_step", "summary"})))
async def edit_step(query: CallbackQuery, callback_data: NavCb, state: FSMContext, session: AsyncSession,
                    dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    message = query.message
    assert isinstance(message, Message)
    if callback_data.action == "summary":
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await show_summary(message, state, dialogue, conv, locale, t)
        return
    if callback_data.step not in {s.key for s in dialogue.editable_steps(conv.answers)}:
        await query.answer(t("stale-button"))
        return
    await query.answer()
    await message.edit_reply_markup(reply_markup=None)
    conv.editing = True
    await go_to(message, state, session, dialogue, conv, dialogue.funnel.step(callback_data.step), locale, t)


@router.message(StateFilter(Flow.summary, Flow.edit_pick, Flow.returning), ~F.text.startswith("/"))
async def summary_input(message: Message, state: FSMContext, dialogue: Dialogue, locale: str, t: Texts) -> None:
    if await state.get_state() == Flow.returning.state:
        # a returning prospect who writes instead of choosing is talking to us: leave the offer and let
        # the prospect router relay it to their manager (or answer with a hint)
        await state.clear()
        raise SkipHandler
    conv = await load(state)
    text, markup = summary_view(dialogue, conv, locale, t)
    await message.answer(f"{t('input-use-buttons')}\n\n{text}", reply_markup=markup)


# ---------------------------------------------------------------- commands inside the dialogue

@router.message(IN_DIALOGUE, Command("manager"))
async def manager_in_dialogue(message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect,
                              funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts) -> None:
    conv = await load(state)
    if prospect.consent_at is None:
        conv.pending_manager = True
        await state.set_data(conv.to_data())
        await reprompt(message, dialogue, conv, locale, t, "manager-needs-consent")
        return
    await svc.request_manager(session, funnel, prospect, conv, locale)
    await state.set_data(conv.to_data())
    await message.answer(t("manager-requested"))
    await resume(message, state, session, dialogue, conv, locale, t)


@router.message(Command("restart"))
async def restart(message: Message, state: FSMContext, session: AsyncSession, prospect: Prospect,
                  funnel: Funnel, dialogue: Dialogue, locale: str, t: Texts, bot: Bot) -> None:
    data = await state.get_data()
    await state.clear()
    conv = await svc.begin(session, dialogue, prospect, data.get("source") or "direct")
    conv.lead_id = data.get("lead_id")
    await message.answer(t("dialogue-restarted"), reply_markup=ReplyKeyboardRemove())
    await go_to(message, state, session, dialogue, conv, dialogue.first_step(), locale, t)


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext, t: Texts) -> None:
    had = await state.get_state()
    await state.clear()
    await message.answer(t("dialogue-cancelled") if had else t("nothing-to-cancel"),
                         reply_markup=ReplyKeyboardRemove())
