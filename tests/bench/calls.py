"""What one Bot API call costs the bot's CPU, against the emulator over real HTTP, three ways:

* ``raw``: aiohttp alone, posting a prepared JSON body of a question with a keyboard (the floor of any
  aiohttp-based bot);
* ``reply``: the bot's own path for the direct replies of an update (`bot.api_session.BotSession`, the
  aiogram method built and dumped, the answer checked but not parsed: `results_unused`);
* ``parsed``: ``bot.send_message`` as aiogram makes it, the answer parsed into a ``Message`` (the echo bot's
  path, and the bot's own where it reads the answer).

The process pins itself to one core and the emulator to the other, as `make bench` does; calls go eight at
a time. It prints the process CPU per call (microseconds) of each, twice, alternated:

    python -m tests.bench.calls --calls 2000

It measures one piece of an update (see the README's performance section), so its figures are not the
bench's; `make bench` stays the measure of record.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from tests.bench.harness import Cores, EmulatorProcess, _post

TOKEN = "123456:" + "A" * 35
PROSPECT = {"id": 5001, "is_bot": False, "first_name": "Ann", "language_code": "en"}
TEXT = "What do you need? Pick one of the options below."
KEYBOARD = InlineKeyboardMarkup(inline_keyboard=[
    [InlineKeyboardButton(text=f"Option {i}", callback_data=f"a:need:{i}")] for i in range(3)
])
CONCURRENCY = 8
WARMUP = 50


async def cpu_per_call(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    """Microseconds of this process's CPU per call, `CONCURRENCY` at a time, after a warm-up."""
    for _ in range(WARMUP):
        await call()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            await call()

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - started) * 1e6 / calls


async def measure(calls: int, repeats: int = 2) -> dict[str, Any]:
    from bot.api_session import results_unused
    from bot.app import create_bot
    from bot.settings import Settings

    cores = Cores.plan()
    allowed = os.sched_getaffinity(0) if cores.bot is not None else None
    if cores.bot is not None:  # this process is the bot here (and is given its cores back at the end)
        os.sched_setaffinity(0, cores.bot)
    workdir = Path(tempfile.mkdtemp(prefix="leadbot-calls-"))
    emulator = EmulatorProcess(workdir, cores.harness).start()
    try:
        base_url = await emulator.ready()
        async with aiohttp.ClientSession() as http:  # the prospect starts the bot, so it may write to them
            await _post(http, f"{base_url}/control/message", {"user": PROSPECT, "text": "/start"})
        settings = Settings(_env_file=None, bot_token=TOKEN, telegram_api_url=base_url,
                            database_url="sqlite+aiosqlite:///:memory:")
        bot = create_bot(settings)
        try:
            await bot.me()
            session = bot.session
            http_session = await session.create_session()  # type: ignore[attr-defined]
            url = session.api.api_url(token=bot.token, method="sendMessage")
            body = json.dumps({"chat_id": PROSPECT["id"], "text": TEXT, "parse_mode": "HTML",
                               "reply_markup": KEYBOARD.model_dump(exclude_none=True)}).encode()

            async def raw() -> None:
                async with http_session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.text()

            async def reply() -> None:
                with results_unused():
                    await bot(SendMessage(chat_id=PROSPECT["id"], text=TEXT, reply_markup=KEYBOARD))

            async def parsed() -> None:
                await bot.send_message(PROSPECT["id"], TEXT, reply_markup=KEYBOARD)

            runs: dict[str, list[float]] = {"raw": [], "reply": [], "parsed": []}
            for _ in range(repeats):
                for name, call in (("raw", raw), ("reply", reply), ("parsed", parsed)):
                    runs[name].append(round(await cpu_per_call(call, calls), 1))
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{base_url}/control/calls", params={"method": "sendMessage"}) as resp:
                sent = len((await resp.json())["calls"])  # every call was a real message
        finally:
            await bot.session.close()
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if allowed is not None:
            os.sched_setaffinity(0, allowed)
    layout = "not pinned" if cores.bot is None else f"this process on CPU {sorted(cores.bot)}, the emulator on " \
        f"CPU {sorted(cores.harness or ())}"
    return {"calls_each": calls, "concurrency": CONCURRENCY, "layout": layout, "messages_sent": sent,
            "cpu_us_per_call": runs, "cpu_us_per_call_min": {k: min(v) for k, v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternated measurements of each")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.calls, args.repeats))))


if __name__ == "__main__":
    main()
