"""``python -m bot.emulator --host 127.0.0.1 --port 8081 [--bot-username leadbot]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from bot.emulator.server import run_emulator


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
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
