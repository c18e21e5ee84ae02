"""The floor: the least any bot on this project's stack can spend on an update of the dialogue, to tell what
the product costs above it.

The echo bot (`tests/bench/echo_bot.py`) answers each message with one call and keeps nothing. The real
dialogue does two things more that no design can leave out, and this bot does those and nothing else:

* **the dialogue's Bot API calls**: the same ones, step by step, as `python -m bot` makes
  (`load.DIALOGUE`): a message gets the next question; a button press gets the press answered, the old
  question's keyboard removed and the next question; the shared contact gets the reply keyboard removed
  and the next question. Through the bot's own reply path (`bot.api_session.BotSession`, orjson, answers
  checked but not parsed), so the calls cost what the bot's own cost;
* **one committed transaction an update** (with `FLOOR_DB=1`, the default): what keeps a dialogue across
  a restart and an update from being handled twice. On the bot's own engine (`bot.db.engine`: its
  one-hop SQLite driver, or the PostgreSQL pool) and its SQLite writer queue, SQLAlchemy Core on a
  connection (no ORM session), as few statements as the work allows (`statements`): the update's marker
  with its answer, the prospect's step moved on and read back; the replies go after the commit, as the
  bot's do.

No funnel, scoring, validation, texts, staff cards, isolation lock, FSM or logging per update, and
aiogram's own polling (the offset confirmed on read), as the echo bot. `FLOOR_DB=0` leaves the
transaction out: the calls alone. Run as its own process by the benchmark:

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT DATABASE_URL=sqlite+aiosqlite:///f.db \\
        python -m tests.bench.floor_bot
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.api_session import BotSession, results_unused
from bot.db.engine import create_engine
from bot.db.sqlite_driver import in_place
from bot.fastjson import json_dumps, json_loads
from bot.middlewares import writer_lock
from tests.bench.load import DIALOGUE

metadata = MetaData()
# the conversation: how far the prospect got; every update's answer is kept on its marker
conversations = Table(
    "floor_conversation", metadata,
    Column("tg_id", BigInteger, primary_key=True),
    Column("step", Integer, nullable=False),  # actions of `DIALOGUE` done
)
handled = Table(
    "floor_handled", metadata,
    Column("update_id", BigInteger, primary_key=True),
    Column("tg_id", BigInteger, nullable=False),
    Column("answer", Text, nullable=False),
)


def statements(dialect: str) -> list[Any]:
    """The update's writes: its marker (a duplicate fails: handled before), then one step further, which
    returns the step reached. On PostgreSQL both are one statement (the marker as a data-modifying `WITH`),
    run on its own (autocommit): one round trip an update. On SQLite, where a statement costs no round
    trip, two in a transaction."""
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(conversations).values(
        tg_id=bindparam("tg_id"), step=1)
    step = upsert.on_conflict_do_update(index_elements=[conversations.c.tg_id],
                                        set_={"step": conversations.c.step + 1}).returning(conversations.c.step)
    mark = insert(handled).values(update_id=bindparam("update_id"), tg_id=bindparam("tg_id"),
                                  answer=bindparam("answer"))
    if dialect == "postgresql":
        return [step.add_cte(mark.cte("mark"))]
    return [mark, step]


@dataclass(frozen=True)
class Question:
    """The bot's message that answers an action: it shows what the prospect needs for the next one."""

    text: str
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None


def question(index: int) -> Question:
    """The message answering `DIALOGUE[index]`: the next action's button, or the contact keyboard, and the
    navigation row of the dialogue's questions; the last ones thank the prospect."""
    following = DIALOGUE[index + 1] if index + 1 < len(DIALOGUE) else None
    text = f"Question {index + 2} of {len(DIALOGUE)}. Thank you: please answer below, or go back or skip."
    if following is not None and following.kind == "contact":
        return Question(text, ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="Share my phone number", request_contact=True)]],
            resize_keyboard=True, one_time_keyboard=True))
    rows = [[InlineKeyboardButton(text=following.arg, callback_data=f"a:{index + 1}:0")]] \
        if following is not None and following.kind == "press" else []
    rows.append([InlineKeyboardButton(text="« Back", callback_data=f"n:back:{index}"),
                 InlineKeyboardButton(text="Skip", callback_data=f"n:skip:{index}")])
    return Question(text, InlineKeyboardMarkup(inline_keyboard=rows))


QUESTIONS = [question(i) for i in range(len(DIALOGUE))]
SAVED = "Saved, thank you."


class Floor:
    def __init__(self, engine: AsyncEngine | None) -> None:
        self.engine = engine
        self.writer = writer_lock(engine)
        self.steps: dict[int, int] = {}  # without a database: the step of each prospect, in memory
        self.writes = statements(engine.dialect.name) if engine is not None else []
        self.autocommit = len(self.writes) == 1

    async def record(self, tg_id: int, update_id: int, answer: str) -> int | None:
        """The prospect's step before this update (None: the update was handled before)."""
        if self.engine is None:
            step = self.steps.get(tg_id, 0)
            self.steps[tg_id] = step + 1
            return step
        params = {"tg_id": tg_id, "update_id": update_id, "answer": answer}
        async with self.writer or contextlib.nullcontext(), in_place(), self.engine.connect() as conn:
            if self.autocommit:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                for write in self.writes:
                    result = await conn.execute(write, params)
            except IntegrityError:  # the marker is there: handled before
                await conn.rollback()
                return None
            reached = result.scalar_one()
            if not self.autocommit:
                await conn.commit()
        return reached - 1

    async def reply(self, bot: Bot, chat_id: int, step: int, *, query: CallbackQuery | None = None,
                    shown: Message | None = None, contact: bool = False) -> None:
        """The dialogue's calls for this step, after the commit; their answers are not parsed."""
        asked = QUESTIONS[step % len(QUESTIONS)]
        with results_unused():
            if query is not None:  # all at once, the next question after the edit (as the bot's lanes)
                await asyncio.gather(
                    bot.answer_callback_query(query.id),
                    self._edit_then_ask(bot, chat_id, shown, asked),
                )
                return
            if contact:
                await bot.send_message(chat_id, SAVED, reply_markup=ReplyKeyboardRemove())
            await bot.send_message(chat_id, asked.text, reply_markup=asked.markup)

    @staticmethod
    async def _edit_then_ask(bot: Bot, chat_id: int, shown: Message | None, asked: Question) -> None:
        if shown is not None:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=shown.message_id, reply_markup=None)
        await bot.send_message(chat_id, asked.text, reply_markup=asked.markup)


def dispatcher(floor: Floor) -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def on_message(message: Message, bot: Bot, event_update: Any) -> None:
        user = message.from_user
        assert user is not None
        answer = message.contact.phone_number if message.contact else message.text or ""
        step = await floor.record(user.id, event_update.update_id, answer)
        if step is not None:
            await floor.reply(bot, message.chat.id, step, contact=message.contact is not None)

    @dp.callback_query()
    async def on_press(query: CallbackQuery, bot: Bot, event_update: Any) -> None:
        shown = query.message if isinstance(query.message, Message) else None
        step = await floor.record(query.from_user.id, event_update.update_id, query.data or "")
        if step is not None:
            await floor.reply(bot, query.from_user.id, step, query=query, shown=shown)

    return dp


async def main() -> None:
    session = BotSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]),
                         json_loads=json_loads, json_dumps=json_dumps)
    bot = Bot(token=os.environ["BOT_TOKEN"], session=session,
              default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True))
    engine = None
    if os.environ.get("FLOOR_DB", "1") != "0":
        engine = create_engine(os.environ["DATABASE_URL"])
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    try:
        await dispatcher(Floor(engine)).start_polling(
            bot, polling_timeout=int(os.environ.get("POLLING_TIMEOUT", "10")), handle_signals=True)
    finally:
        if engine is not None:
            await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())

