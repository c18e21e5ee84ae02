"""The bot's own CPU per update, without HTTP: the whole dialogue (`load.DIALOGUE`) fed to the real app's
dispatcher in this process, one update at a time, on SQLite (or PostgreSQL, `--db postgres`), with the Bot
API answered by a stub.

It measures what the bot's code costs (middlewares, handlers, the database, building the replies and
parsing Telegram's answers) apart from the network and the emulator, in rounds, and prints the fastest
round and the median: on a shared machine a round that ran undisturbed is the better estimate. Use it to
compare two versions of the code back to back, or under a profiler:

    python -m tests.bench.inprocess --rounds 20 --prospects 5
    py-spy record -f raw -o /tmp/spy.txt -- python -m tests.bench.inprocess --rounds 30
    taskset -c 0 python -m tests.bench.inprocess      # one core, as `make bench` pins the bot

`make bench` stays the measure of record: this leaves out aiohttp, getUpdates and the other process.

On a shared virtual machine the time a round takes swings by half from one minute to the next (the host's
other guests), so a small change cannot be told from the noise by timing it. `--instructions` counts the
machine instructions per update instead, under valgrind's callgrind, with the same seed for Python's
hashes: the same code gives the same count to a tenth of a percent, whatever else the machine does.
Only the measured rounds are counted (startup and warm-up run with counting off); about a minute:

    python -m tests.bench.inprocess --instructions --rounds 1 --prospects 6
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.types import Update
from sqlalchemy import func, select

from bot.api_session import JsonParams, SkipUnusedResults
from bot.db.models import DeadLetter, Lead
from bot.fastjson import json_dumps, json_loads
from tests.bench.load import DIALOGUE, button_data, contact_of, fill, make_user

TOKEN = "123456:" + "A" * 35
MESSAGES = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument", "sendPhoto"}


class StubSession(SkipUnusedResults, JsonParams):
    """Answers every Bot API call as Telegram would, through the bot's own response handling (aiogram's
    parsing, skipped for the replies nobody reads, as in `bot.api_session`); keeps the last inline
    keyboard sent to each chat, for the next button press."""

    def __init__(self) -> None:
        super().__init__(json_loads=json_loads, json_dumps=json_dumps)  # as the bot's own session
        self.message_ids = itertools.count(1000)
        self.keyboards: dict[int, dict[str, Any]] = {}
        self.calls = 0

    async def close(self) -> None:
        return None

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - no files here
        raise NotImplementedError

    async def make_request(self, bot: Bot, method: Any, timeout: int | None = None) -> Any:
        self.calls += 1
        params = self.request_params(bot, method)  # as the bot's session builds them, and encodes them
        if params is not None:
            self.json_dumps(params)
        else:  # a file: multipart, as aiogram's form
            params = {}
            for key, value in method.model_dump(warnings=False).items():
                prepared = self.prepare_value(value, bot=bot, files={})
                if prepared is not None:
                    params[key] = json_loads(prepared) if isinstance(prepared, str) and prepared[:1] in "{[" else prepared
        name = method.__api_method__
        result: Any = True
        if name == "getMe":
            result = {"id": 123456, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
        elif name in MESSAGES:
            chat_id = int(params.get("chat_id") or 0)
            result = {"message_id": params.get("message_id") or next(self.message_ids), "date": int(time.time()),
                      "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                      "text": params.get("text", "")}
            markup = params.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                result["reply_markup"] = markup
                self.keyboards[chat_id] = result
        elif name == "getChatMember":
            result = {"status": "member", "user": {"id": params["user_id"], "is_bot": False, "first_name": "M"}}
        return self.check_response(bot, method, 200, json_dumps({"ok": True, "result": result})).result


class Feeder:
    def __init__(self, app: Any, bot: Bot, stub: StubSession) -> None:
        self.app, self.bot, self.stub = app, bot, stub
        self.update_ids = itertools.count(1)
        self.message_ids = itertools.count(1)

    def _message(self, user: dict[str, Any], **content: Any) -> dict[str, Any]:
        return {"message_id": next(self.message_ids), "date": int(time.time()),
                "chat": {"id": user["id"], "type": "private"}, "from": user, **content}

    async def dialogue(self, uid: int) -> None:
        user = make_user(uid)
        for action in DIALOGUE:
            update: dict[str, Any] = {"update_id": next(self.update_ids)}
            if action.kind == "text":
                text = fill(action.arg, uid)
                command = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
                update["message"] = self._message(user, text=text, **({"entities": command} if text[0] == "/" else {}))
            elif action.kind == "contact":
                update["message"] = self._message(user, contact=contact_of(user))
            else:
                shown = self.stub.keyboards[uid]
                data = button_data(shown, action.arg)
                assert data is not None, f"no button {action.arg!r}"
                update["callback_query"] = {"id": str(update["update_id"]), "from": user, "chat_instance": "bench",
                                            "data": data, "message": shown}
            await self.app.dp.feed_update(self.bot, Update.model_validate(update, context={"bot": self.bot}))


async def stub_app(database_url: str) -> tuple[Any, Bot, StubSession]:
    """The real app on `database_url`, its Bot API answered by a `StubSession`, without the delivery worker."""
    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings(_env_file=None, bot_token=TOKEN, database_url=database_url,
                        staff_chat_id=-100500, manager_ids=[701], admin_ids=[900], digest="off",
                        telegram_api_url="http://127.0.0.1:9")
    stub = StubSession()
    bot = Bot(TOKEN, session=stub, default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                                                 link_preview_is_disabled=True))
    app = await create_app(settings, bot=bot, with_delivery=False)
    await bot.me()
    return app, bot, stub


async def measure(rounds: int, prospects: int, warmup: int = 5,
                  counting: Callable[[bool], None] | None = None, db: str = "sqlite") -> dict[str, Any]:
    if db == "postgres":
        from tests.bench.harness import postgres_database

        async with postgres_database("inprocess") as database:
            return await _measure(database.url, rounds, prospects, warmup, counting)
    with tempfile.TemporaryDirectory() as folder:
        return await _measure(f"sqlite+aiosqlite:///{Path(folder)}/b.db", rounds, prospects, warmup, counting)


async def _measure(database_url: str, rounds: int, prospects: int, warmup: int,
                   counting: Callable[[bool], None] | None) -> dict[str, Any]:
    app, bot, stub = await stub_app(database_url)
    try:
        feeder, uids = Feeder(app, bot, stub), itertools.count(10_000)
        for _ in range(warmup):
            await feeder.dialogue(next(uids))
        per_update: list[float] = []
        calls_before = stub.calls
        if counting is not None:
            counting(True)
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(prospects):
                await feeder.dialogue(next(uids))
            per_update.append((time.process_time() - started) * 1000 / (prospects * len(DIALOGUE)))
        if counting is not None:
            counting(False)
        async with app.session_factory() as session:  # every dialogue really went through
            leads = await session.scalar(select(func.count()).select_from(Lead))
            failed = await session.scalar(select(func.count()).select_from(DeadLetter))
    finally:
        await app.close()
    updates = rounds * prospects * len(DIALOGUE)
    return {"updates": updates, "leads": leads, "dialogues": warmup + rounds * prospects, "dead_letters": failed,
            "cpu_ms_per_update_min": round(min(per_update), 3),
            "cpu_ms_per_update_median": round(statistics.median(per_update), 3),
            "bot_api_calls_per_update": round((stub.calls - calls_before) / updates, 2)}


UNDER_CALLGRIND = "LEADBOT_BENCH_UNDER_CALLGRIND"


def _callgrind_counting(on: bool) -> None:
    subprocess.run(["callgrind_control", "--instr=on" if on else "--instr=off", str(os.getpid())],
                   check=True, capture_output=True)


def count_instructions(rounds: int, prospects: int, db: str = "sqlite") -> dict[str, Any]:
    """This benchmark again under callgrind, counting only the measured rounds."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        child = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, "-m", "tests.bench.inprocess", "--rounds", str(rounds), "--prospects", str(prospects),
             "--db", db],
            env={**os.environ, UNDER_CALLGRIND: "1", "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
            check=True,
        )
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    for timed in ("cpu_ms_per_update_min", "cpu_ms_per_update_median"):  # valgrind's, not the bot's
        result.pop(timed)
    instructions = int(totals[-1].split()[1])
    result["instructions_per_update"] = round(instructions / result["updates"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--prospects", type=int, default=5, help="dialogues per round")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per update under callgrind (repeatable; see above)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="postgres: a fresh database on the bench's server (only the bot's side is counted)")
    args = parser.parse_args()
    if args.instructions:
        print(json.dumps(count_instructions(args.rounds, args.prospects, args.db)))
        return
    counting = _callgrind_counting if os.environ.get(UNDER_CALLGRIND) else None
    print(json.dumps(asyncio.run(measure(args.rounds, args.prospects, counting=counting, db=args.db))))


if __name__ == "__main__":
    main()
