"""Who may do what: admins from settings; managers from settings and live staff-chat membership."""
from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
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
