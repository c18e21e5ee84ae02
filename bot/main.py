"""Entry point: `python -m bot` / `leadbot`. Long polling by default, a webhook server with WEBHOOK_URL."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from pydantic import ValidationError

log = logging.getLogger("bot")

# Container objects allocated, net of those freed, before the youngest garbage-collector generation is
# scanned (CPython's default is 700). An update allocates a few thousand, nearly all freed by reference
# counting; at 700 the collector ran several times an update and promoted what was merely in flight.
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Called once the bot is wired, before the first update: what exists now (modules, routers,
    compiled funnel, pydantic and SQLAlchemy machinery: about 200,000 objects) lives until the process
    ends, so it is moved out of the collector's sight (`gc.freeze`). Without this, every full
    collection walked all of it again: a 60-90 ms pause of the event loop every few seconds under load,
    which was most of the reply latency's p99. Full collections now walk only what was made since
    start."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def load_settings():
    from bot.settings import Settings, describe_error

    try:
        return Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


async def serve(settings) -> None:
    from bot.app import create_app
    from bot.commands import set_commands
    from bot.polling import Poller

    app = await create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        me = await app.bot.get_me()
        log.info("started as @%s (id %s), funnel %r", me.username, me.id, app.funnel.name)
        await set_commands(app)
        from bot.roles import check_staff_chat

        await check_staff_chat(app)
        from bot.analytics import digest

        digest.start(app)
        if app.delivery is not None:
            app.delivery.start()
        from bot.maintenance import run_forever

        housekeeping = asyncio.create_task(run_forever(app.session_factory))
        settle_heap()
        if settings.webhook_url:
            from bot.webhook import run_webhook

            await run_webhook(app, stop)
        else:
            await app.bot.delete_webhook(drop_pending_updates=False)
            poller = Poller(app.bot, app.dp, timeout=settings.polling_timeout,
                            concurrency=settings.max_concurrent_updates)
            app.extras["poller"] = poller
            stopper = asyncio.create_task(_stop_when(stop, poller))
            await app.dp.emit_startup(bot=app.bot, **app.dp.workflow_data)
            await poller.run()
            stopper.cancel()
            await app.dp.emit_shutdown(bot=app.bot, **app.dp.workflow_data)
        housekeeping.cancel()
        await digest.stop()
        log.info("stopped cleanly")
    finally:
        await app.close()


async def _stop_when(stop: asyncio.Event, poller) -> None:
    await stop.wait()
    log.info("stop requested: finishing updates in flight")
    poller.stop()


def run() -> None:
    settings = load_settings()
    from bot.logs import setup_logging

    setup_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except Exception as exc:
        from funnel import FunnelError

        if isinstance(exc, FunnelError):
            print(f"configuration error: FUNNEL_FILE: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    run()
