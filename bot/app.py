"""The one factory that wires the application: settings in, a ready `App` out."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import DisabledEventIsolation, SimpleEventIsolation
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.api_session import BotSession
from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.fastjson import json_dumps, json_loads
from bot.i18n import Translator
from bot.inline_filters import install as run_filters_in_place
from bot.middlewares import ContextMiddleware, FloodMiddleware, IsolationMiddleware, UnitOfWorkMiddleware
from bot.roles import Roles, StaffChat
from bot.settings import Settings
from bot.storage import SQLAlchemyStorage
from funnel import Dialogue, Funnel, load_funnel

log = logging.getLogger(__name__)
REDIS_TTL = 60 * 60 * 24 * 30  # seconds: a dialogue untouched for 30 days is forgotten


@dataclass
class App:
    settings: Settings
    bot: Bot
    dp: Dispatcher
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    funnel: Funnel
    translator: Translator
    staff: StaffChat
    roles: Roles
    storage: BaseStorage
    delivery: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if self.delivery is not None:
            await self.delivery.stop()
        await self.storage.close()
        await self.bot.session.close()
        await self.engine.dispose()


def create_bot(settings: Settings) -> Bot:
    # orjson: decoding the Bot API's answers (getUpdates above all) was 17 % of the bot's CPU with json
    session = BotSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_url), json_loads=json_loads, json_dumps=json_dumps
    )
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def _storage(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> tuple[
    BaseStorage, BaseEventIsolation
]:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        storage = RedisStorage.from_url(
            settings.redis_url, key_builder=DefaultKeyBuilder(with_destiny=True),
            state_ttl=REDIS_TTL, data_ttl=REDIS_TTL,  # abandoned dialogues do not stay forever
        )
        return storage, storage.create_isolation()
    return SQLAlchemyStorage(session_factory), SimpleEventIsolation()


async def create_app(settings: Settings, *, bot: Bot | None = None, with_delivery: bool = True) -> App:
    run_filters_in_place()  # not through the thread pool (bot/inline_filters.py)
    funnel = load_funnel(settings.funnel_file)
    translator = Translator(settings.default_locale)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    await create_schema(engine)
    session_factory = create_session_factory(engine)
    staff = StaffChat(settings.staff_chat_id)
    await staff.load(session_factory)
    roles = Roles(settings, staff)
    storage, isolation = _storage(settings, session_factory)
    bot = bot or create_bot(settings)

    dp = Dispatcher(storage=storage, events_isolation=DisabledEventIsolation(), disable_fsm=True)
    app = App(settings, bot, dp, engine, session_factory, funnel, translator, staff, roles, storage)

    if with_delivery and settings.delivery_worker:
        from bot.delivery import DeliveryWorker

        app.delivery = DeliveryWorker(app)

    def wake_delivery() -> None:
        if app.delivery is not None:
            app.delivery.wake()

    dp.update.outer_middleware(IsolationMiddleware(isolation))
    dp.update.outer_middleware(UnitOfWorkMiddleware(session_factory, translator, after_commit=wake_delivery,
                                                    fsm=dp.fsm))
    dp.update.outer_middleware(ContextMiddleware(translator, roles.admin_ids))
    dp.update.outer_middleware(dp.fsm)
    dp.message.outer_middleware(FloodMiddleware(
        settings.flood_messages, settings.flood_window_seconds, settings.flood_mute_seconds, translator,
    ))
    dp.workflow_data.update(
        app=app, settings=settings, funnel=funnel, dialogue=Dialogue(funnel), translator=translator,
        staff=staff, roles=roles, session_factory=session_factory,
    )

    from handlers import setup_routers

    dp.include_router(setup_routers())
    return app
