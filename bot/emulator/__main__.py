"""``python -m bot.emulator --host 127.0.0.1 --port 8081 [--bot-username leadbot]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal

from bot.emulator.server import run_emulator

# The emulator keeps every update, message and call it saw (the control side reads them back), so its heap
# grows with the run, and each full collection of the garbage collector walked all of it again: pauses of
# 30, 65, then 117 ms into a benchmark's latency run, which showed as the bot's p99 (Telegram does not
# pause). So every few seconds all the collector tracks is moved out of its sight (`gc.freeze`). What
# reference counting frees (nearly everything) is freed as before; only reference cycles that were
# garbage already when frozen are never freed, which a test double can afford.
SETTLE_HEAP_EVERY = 2.0  # seconds


async def _settle_heap_forever(every: float = SETTLE_HEAP_EVERY) -> None:
    while True:
        await asyncio.sleep(every)
        gc.freeze()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.emulator", description="Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--bot-username", default="leadbot")
    parser.add_argument("--bot-name", default="Lead Bot", help="the bot's first_name")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    async with run_emulator(
        args.host, args.port, bot_username=args.bot_username, bot_first_name=args.bot_name
    ) as emulator:
        print(emulator.base_url, flush=True)
        settler = asyncio.create_task(_settle_heap_forever())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        settler.cancel()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
