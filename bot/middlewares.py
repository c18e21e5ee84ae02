"""Outer update middlewares, in this order:

1. `IsolationMiddleware`  - one update at a time per user (ten quick messages -> one phone, not ten)
2. `UnitOfWorkMiddleware` - one session per update; drops redelivered updates/messages; commits after
                            the handler; a raising handler becomes a dead letter + a polite apology
3. `ContextMiddleware`    - the prospect row, their locale and texts (`t`), the user's role
4. aiogram's FSM middleware (our database storage joins the update's session)
Flood control sits on private messages, before any handler.
"""
from __future__ import annotations

import logging
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import DeadLetter, ProcessedMessage, ProcessedUpdate, Prospect
from bot.i18n import Translator
from bot.logs import mask
from bot.storage import current_session

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def update_user(update: Update) -> User | None:
    event = update.event
    return getattr(event, "from_user", None)


def update_chat_id(update: Update) -> int | None:
    event = update.event
    if isinstance(event, Message):
        return event.chat.id
    if isinstance(event, CallbackQuery) and event.message is not None:
        return event.message.chat.id
    chat = getattr(event, "chat", None)
    return chat.id if chat else None


class IsolationMiddleware(BaseMiddleware):
    def __init__(self, isolation: BaseEventIsolation) -> None:
        self.isolation = isolation

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = update_user(event)
        if user is None:
            return await handler(event, data)
        bot: Bot = data["bot"]
        key = StorageKey(bot_id=bot.id, chat_id=user.id, user_id=user.id, destiny="isolation")
        async with self.isolation.lock(key):
            return await handler(event, data)


class UnitOfWorkMiddleware(BaseMiddleware):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        translator: Translator,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.translator = translator
        self.after_commit = after_commit

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        async with self.session_factory() as session:
            if await self._already_handled(session, event):
                log.info("update %s already handled, skipped", event.update_id)
                return None
            token = current_session.set(session)
            data["session"] = session
            try:
                result = await handler(event, data)
                await session.commit()
            except Exception as exc:  # noqa: BLE001 - a poison update must not stop the bot
                await session.rollback()
                current_session.reset(token)
                await self._dead_letter(event, exc, data)
                return None
            current_session.reset(token)
        if self.after_commit is not None:
            self.after_commit()
        return result

    @staticmethod
    async def _already_handled(session: AsyncSession, update: Update) -> bool:
        if await session.get(ProcessedUpdate, update.update_id) is not None:
            return True
        session.add(ProcessedUpdate(update_id=update.update_id))
        message = update.message
        if message is not None:
            key = (message.chat.id, message.message_id)
            if await session.get(ProcessedMessage, key) is not None:
                return True
            session.add(ProcessedMessage(chat_id=message.chat.id, message_id=message.message_id))
        return False

    async def _dead_letter(self, update: Update, exc: Exception, data: dict[str, Any]) -> None:
        user = update_user(update)
        log.error(
            "update %s failed (%s: %s); kept as a dead letter",
            update.update_id, type(exc).__name__, mask(str(exc)),
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        try:
            async with self.session_factory() as session, session.begin():
                await session.merge(ProcessedUpdate(update_id=update.update_id))
                if update.message is not None:
                    await session.merge(
                        ProcessedMessage(chat_id=update.message.chat.id, message_id=update.message.message_id)
                    )
                session.add(
                    DeadLetter(
                        update_id=update.update_id,
                        user_id=user.id if user else None,
                        error=f"{type(exc).__name__}: {mask(str(exc))}"[:4000],
                        traceback=mask("".join(traceback.format_exception(exc)))[-20000:],
                        update=update.model_dump(mode="json", exclude_none=True),
                    )
                )
        except Exception:  # noqa: BLE001
            log.exception("could not store dead letter for update %s", update.update_id)
        await self._apologise(update, data)

    async def _apologise(self, update: Update, data: dict[str, Any]) -> None:
        bot: Bot = data["bot"]
        user = update_user(update)
        chat_id = update_chat_id(update)
        t = self.translator.for_locale(self.translator.resolve(user.language_code if user else None))
        try:
            if update.callback_query is not None:
                await bot.answer_callback_query(update.callback_query.id, text=t("error-apology"))
            elif chat_id is not None:
                await bot.send_message(chat_id, t("error-apology"))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not apologise for update %s: %s", update.update_id, type(exc).__name__)


class ContextMiddleware(BaseMiddleware):
    """Puts `prospect` (private chats), `locale`, `t` and `role` into the handler data."""

    def __init__(self, translator: Translator, admin_ids: set[int]) -> None:
        self.translator = translator
        self.admin_ids = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = update_user(event)
        chat_id = update_chat_id(event)
        session: AsyncSession | None = data.get("session")
        prospect = None
        if user is not None and session is not None and chat_id == user.id and not user.is_bot:
            prospect = await load_prospect(session, user)
        locale = self.translator.resolve(
            prospect.locale if prospect else None, user.language_code if user else None
        )
        data["prospect"] = prospect
        data["locale"] = locale
        data["t"] = self.translator.for_locale(locale)
        data["is_admin"] = bool(user and user.id in self.admin_ids)
        return await handler(event, data)


async def load_prospect(session: AsyncSession, user: User) -> Prospect:
    from sqlalchemy import select

    prospect = await session.scalar(select(Prospect).where(Prospect.tg_id == user.id))
    if prospect is None:
        prospect = Prospect(
            tg_id=user.id, chat_id=user.id, username=user.username, first_name=user.first_name,
            tg_language=user.language_code,
        )
        session.add(prospect)
        await session.flush()
    else:
        if prospect.forgotten_at is None and (
            prospect.username != user.username or prospect.first_name != user.first_name
        ):
            prospect.username, prospect.first_name = user.username, user.first_name
        if prospect.tg_language != user.language_code:
            prospect.tg_language = user.language_code
        if prospect.unreachable:
            prospect.unreachable = False  # they wrote to us, so they unblocked the bot
    return prospect


class FloodMiddleware(BaseMiddleware):
    """More than `limit` private messages within `window` seconds mutes a user for `mute` seconds."""

    def __init__(self, limit: int, window: float, mute: float, translator: Translator) -> None:
        self.limit, self.window, self.mute = limit, window, mute
        self.translator = translator
        self.hits: dict[int, deque[float]] = defaultdict(deque)
        self.muted_until: dict[int, float] = {}

    def check(self, user_id: int, now: float) -> str:
        """'ok', 'warn' (just muted: say so once) or 'drop'."""
        until = self.muted_until.get(user_id)
        if until is not None:
            if now < until:
                return "drop"
            del self.muted_until[user_id]
        hits = self.hits[user_id]
        while hits and now - hits[0] > self.window:
            hits.popleft()
        hits.append(now)
        if len(hits) > self.limit:
            hits.clear()
            self.muted_until[user_id] = now + self.mute
            return "warn"
        if not hits:
            del self.hits[user_id]
        return "ok"

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        if event.chat.type != "private" or event.from_user is None:
            return await handler(event, data)
        verdict = self.check(event.from_user.id, time.monotonic())
        if verdict == "ok":
            return await handler(event, data)
        if verdict == "warn":
            t = data.get("t") or self.translator.for_locale(self.translator.resolve(event.from_user.language_code))
            await event.answer(t("flood-slow-down", seconds=int(self.mute)))
        log.info("flood: message from user %s ignored", event.from_user.id)
        return None
