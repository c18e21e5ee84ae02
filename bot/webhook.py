"""Webhook mode (WEBHOOK_URL set): Telegram POSTs updates; we answer 200 only after the handler has
committed (handle_in_background=False), so a crash mid-update makes Telegram deliver it again."""
from __future__ import annotations

import asyncio
import logging

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

log = logging.getLogger(__name__)


async def run_webhook(app, stop: asyncio.Event) -> None:
    settings = app.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    web_app = web.Application()
    SimpleRequestHandler(
        dispatcher=app.dp, bot=app.bot, secret_token=secret, handle_in_background=False,
    ).register(web_app, path=settings.webhook_path)
    setup_application(web_app, app.dp, bot=app.bot)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    url = settings.webhook_url.rstrip("/") + settings.webhook_path if settings.webhook_url else ""
    await app.bot.set_webhook(url, secret_token=secret, allowed_updates=app.dp.resolve_used_update_types())
    log.info("webhook server on %s:%s, Telegram posts to %s", settings.webhook_host, settings.webhook_port, url)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
