"""Commands every prospect has: /help, /language, /mydata, /forget."""
from __future__ import annotations

import json

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Prospect
from bot.i18n import LANGUAGE_NAMES, Texts, Translator
from bot.services import privacy
from funnel import Funnel
from handlers.callbacks import ForgetCb, LangCb
from handlers.filters import looks_like_command

router = Router(name="common")
router.message.filter(F.chat.type == "private", looks_like_command)  # every message handler is a command
router.callback_query.filter(F.message.chat.type == "private")


@router.message(Command("help"))
async def help_(message: Message, state: FSMContext, t: Texts) -> None:
    in_dialogue = (await state.get_state() or "").startswith("Flow:")
    await message.answer(t("help-dialogue") if in_dialogue else t("help-general"))


@router.message(Command("language"))
async def language(message: Message, translator: Translator, t: Texts) -> None:
    rows = [[InlineKeyboardButton(text=LANGUAGE_NAMES.get(code, code), callback_data=LangCb(code=code).pack())]
            for code in translator.locales]
    await message.answer(t("language-pick"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


@router.callback_query(LangCb.filter())
async def language_set(query: CallbackQuery, callback_data: LangCb, prospect: Prospect,
                       translator: Translator) -> None:
    if callback_data.code not in translator.locales:
        await query.answer()
        return
    prospect.locale = callback_data.code
    t = translator.for_locale(callback_data.code)
    await query.answer(t("language-set"))
    if isinstance(query.message, Message):
        await query.message.edit_text(t("language-set"))


@router.message(Command("mydata"))
async def my_data(message: Message, session: AsyncSession, prospect: Prospect, funnel: Funnel,
                  locale: str, t: Texts) -> None:
    data = await privacy.export_prospect(session, funnel, prospect, locale)
    if not data["leads"] and not prospect.name and not prospect.phone:
        await message.answer(t("mydata-nothing"))
        return
    payload = json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()
    await message.answer(privacy.describe(data, t))
    await message.answer_document(BufferedInputFile(payload, filename="my-data.json"), caption=t("mydata-file"))


@router.message(Command("forget"))
async def forget(message: Message, t: Texts) -> None:
    await message.answer(t("forget-confirm"), reply_markup=InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t("forget-yes"), callback_data=ForgetCb(confirm=True).pack())],
        [InlineKeyboardButton(text=t("forget-no"), callback_data=ForgetCb(confirm=False).pack())],
    ]))


@router.callback_query(ForgetCb.filter())
async def forget_confirmed(query: CallbackQuery, callback_data: ForgetCb, state: FSMContext,
                           session: AsyncSession, prospect: Prospect, funnel: Funnel, t: Texts) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if not callback_data.confirm:
        await query.message.edit_text(t("forget-kept"))
        return
    await state.clear()
    await privacy.forget(session, funnel, prospect)
    await query.message.edit_text(t("forget-done"))
