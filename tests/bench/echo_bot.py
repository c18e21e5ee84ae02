"""The ceiling: a bare aiogram bot that answers every message with its text.

aiogram's own `Dispatcher.start_polling` (updates handled as tasks, offset confirmed on read), one handler,
no middlewares, no database, no logging per update. Run as its own process by the benchmark:

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT python -m tests.bench.echo_bot
"""
from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> None:
    await message.answer(message.text or "…")


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(token=os.environ["BOT_TOKEN"], session=session)
    await dp.start_polling(bot, polling_timeout=int(os.environ.get("POLLING_TIMEOUT", "10")))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
