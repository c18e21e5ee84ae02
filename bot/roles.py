"""Who may do what: admins from settings; managers from settings and live staff-chat membership."""
from __future__ import annotations

import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import KeyValue
from bot.settings import Settings

log = logging.getLogger(__name__)
MEMBER_STATUSES = {"creator", "administrator", "member", "restricted"}


class StaffChat:
    """The managers' group. Its id survives a migration to a supergroup (kept in the database)."""

    KEY = "staff_chat_id"

    def __init__(self, configured: int | None) -> None:
        self.configured = configured
        self.id = configured

    async def load(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        if self.configured is None:
            return
        async with session_factory() as session:
            row = await session.get(KeyValue, self.KEY)
            if row and row.value.get("from") == self.configured:
                self.id = int(row.value["to"])

    async def migrate(self, session: AsyncSession, new_id: int) -> None:
        log.warning("staff chat %s migrated to %s", self.id, new_id)
        self.id = new_id
        await session.merge(KeyValue(key=self.KEY, value={"from": self.configured, "to": new_id}))

    async def problem(self, bot: Bot) -> str | None:
        """Why the bot cannot post into the staff chat, asked of Telegram: "left", "kicked" or the error
        of a chat it cannot see (a wrong STAFF_CHAT_ID); None when it can, when no staff chat is set, or
        when Telegram cannot be asked now (the delivery worker's retries cover a short outage)."""
        if self.id is None:
            return None
        try:
            member = await bot.get_chat_member(self.id, bot.id)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            return exc.message[:200]
        except (TelegramAPIError, OSError, TimeoutError) as exc:
            log.info("could not check the staff chat %s: %s", self.id, type(exc).__name__)
            return None
        return None if member.status in MEMBER_STATUSES else str(member.status)

    def is_staff_chat(self, chat_id: int | None) -> bool:
        return chat_id is not None and chat_id in {self.id, self.configured} and self.id is not None


class Roles:
    def __init__(self, settings: Settings, staff: StaffChat) -> None:
        self.admin_ids = set(settings.admin_ids)
        self.manager_ids = set(settings.manager_ids)
        self.cache_seconds = settings.member_cache_seconds
        self.staff = staff
        self._members: dict[int, tuple[float, bool]] = {}

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids

    async def is_manager(self, bot: Bot, user_id: int) -> bool:
        """In MANAGER_IDS (when set) and a current member of the staff chat (getChatMember, cached)."""
        if self.manager_ids and user_id not in self.manager_ids:
            return False
        if self.staff.id is None:
            return False
        now = time.monotonic()
        cached = self._members.get(user_id)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            member = await bot.get_chat_member(self.staff.id, user_id)
            ok = member.status in MEMBER_STATUSES
        except TelegramAPIError as exc:
            log.warning("getChatMember failed for user %s: %s", user_id, exc)
            ok = False
        self._members[user_id] = (now, ok)
        return ok

    def forget(self, user_id: int) -> None:
        self._members.pop(user_id, None)


async def check_staff_chat(app: Any) -> bool:
    """At start: a bot that is not in the staff chat (removed while it was down and the update is gone, or
    a wrong STAFF_CHAT_ID) is told to the admins as a removal is (`bot.services.reach.staff_chat_lost`),
    once: not again at every start until it is back. A bot found back in the chat after the admins were
    told of a removal (re-added while it was down) tells them it is back. True when the admins were told."""
    from bot.services import reach

    if app.staff.id is None:
        return False
    problem = await app.staff.problem(app.bot)
    async with app.session_factory() as session, session.begin():
        told = await session.get(KeyValue, reach.STAFF_CHAT_REMOVED) is not None
        if problem is None:
            if told:
                await reach.staff_chat_back(session, app.translator, app.roles.admin_ids, app.staff.id)
        elif told:
            log.warning("the bot is still not in the staff chat %s (%s)", app.staff.id, problem)
        else:
            await reach.staff_chat_lost(session, app.translator, app.roles.admin_ids, app.staff.id, problem)
    if app.delivery is not None:
        app.delivery.wake()
    return (problem is None) == told
