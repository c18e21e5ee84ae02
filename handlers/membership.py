"""The bot's own membership (`my_chat_member` updates): a prospect blocks or unblocks the bot in their
private chat; the bot is removed from or added back to the staff group.

Nothing is said in the chat the update is about: a prospect who blocked the bot cannot be written to,
and a group the bot was removed from neither. The managers learn of a block from the lead's card, the
admins of the staff group from a private message (`bot.services.reach`).
"""
from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatMemberStatus
from aiogram.filters import IS_MEMBER, IS_NOT_MEMBER, KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Prospect
from bot.i18n import Translator
from bot.roles import StaffChat
from bot.services import reach
from bot.settings import Settings

router = Router(name="membership")


def in_staff_chat(event: ChatMemberUpdated, staff: StaffChat) -> bool:
    return staff.is_staff_chat(event.chat.id)


# ---------------------------------------------------------------------------- a prospect's private chat


@router.my_chat_member(F.chat.type == "private", ChatMemberUpdatedFilter(KICKED))
async def blocked(event: ChatMemberUpdated, session: AsyncSession, prospect: Prospect | None) -> None:
    await reach.prospect_blocked(session, event.chat.id, prospect=prospect)


@router.my_chat_member(F.chat.type == "private", ChatMemberUpdatedFilter(KICKED >> MEMBER))
async def unblocked(event: ChatMemberUpdated, session: AsyncSession, prospect: Prospect | None) -> None:
    if prospect is not None:
        await reach.prospect_unblocked(session, prospect)


# ---------------------------------------------------------------------------- the staff group


@router.my_chat_member(in_staff_chat, ChatMemberUpdatedFilter(IS_MEMBER >> IS_NOT_MEMBER))
async def removed_from_staff_chat(
    event: ChatMemberUpdated, session: AsyncSession, translator: Translator, settings: Settings
) -> None:
    status = ChatMemberStatus(event.new_chat_member.status).value
    await reach.staff_chat_lost(session, translator, settings.admin_ids, event.chat.id, status)


@router.my_chat_member(in_staff_chat, ChatMemberUpdatedFilter(IS_NOT_MEMBER >> IS_MEMBER))
async def back_in_staff_chat(
    event: ChatMemberUpdated, session: AsyncSession, translator: Translator, settings: Settings
) -> None:
    await reach.staff_chat_back(session, translator, settings.admin_ids, event.chat.id)
