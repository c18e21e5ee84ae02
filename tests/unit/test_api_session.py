"""bot/api_session.py: answers nobody reads are not parsed; errors are raised as aiogram raises them."""
from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import SendMessage
from aiogram.types import Message

from bot.api_session import BotSession, results_unused

TOKEN = "123456:" + "A" * 35
SENT = json.dumps({"ok": True, "result": {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"},
                                          "text": "hi"}})


@pytest.fixture
async def bot():
    bot = Bot(TOKEN, session=BotSession())
    yield bot
    await bot.session.close()


async def test_an_answer_is_parsed_unless_nobody_reads_it(bot, monkeypatch):
    method = SendMessage(chat_id=5, text="hi")
    parsed = bot.session.check_response(bot, method, 200, SENT).result
    assert isinstance(parsed, Message) and parsed.message_id == 7
    validated = []
    monkeypatch.setattr("aiogram.methods.base.Response.model_validate",
                        classmethod(lambda cls, *a, **k: validated.append(a) or None))
    with results_unused():
        response = bot.session.check_response(bot, method, 200, SENT)
    assert response.ok is True and response.result is None and validated == []


@pytest.mark.parametrize(("status", "body", "error"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
           "parameters": {"retry_after": 3}}, TelegramRetryAfter),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, TelegramBadRequest),
    (200, {"ok": False, "error_code": 400, "description": "Bad Request: odd"}, TelegramAPIError),  # not taken for ok
])
async def test_errors_are_raised_as_aiogram_raises_them(bot, status, body, error):
    with results_unused(), pytest.raises(error) as raised:
        bot.session.check_response(bot, SendMessage(chat_id=5, text="hi"), status, json.dumps(body))
    if error is TelegramRetryAfter:
        assert raised.value.retry_after == 3


def _form_params(session: BotSession, bot: Bot, method: Any) -> dict[str, Any]:
    """What aiogram's form would carry, each value as the Bot API reads it."""
    from urllib.parse import parse_qsl

    body = session.build_form_data(bot, method)()._value.decode()
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


async def test_a_call_goes_as_json_with_what_the_form_would_carry():
    from datetime import UTC, datetime, timedelta

    from aiogram.client.default import DefaultBotProperties
    from aiogram.enums import ParseMode
    from aiogram.methods import AnswerCallbackQuery, BanChatMember, EditMessageText, SendDocument
    from aiogram.types import (
        BufferedInputFile,
        InlineKeyboardButton,
        InlineKeyboardMarkup,
        ReplyKeyboardRemove,
    )

    session = BotSession()
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML,
                                                                  link_preview_is_disabled=True))
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="n:yes")]])
    calls = [
        SendMessage(chat_id=5, text="<b>Question</b> one of eight", reply_markup=keyboard),
        SendMessage(chat_id=-100500, text="saved", reply_markup=ReplyKeyboardRemove(), disable_notification=False),
        EditMessageText(chat_id=5, message_id=9, text="done", reply_markup=None),
        AnswerCallbackQuery(callback_query_id="q1", text="", show_alert=False),
        BanChatMember(chat_id=-100500, user_id=7, until_date=datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    try:
        for method in calls:
            params = session.json_params(bot, method)
            assert params == _form_params(session, bot, method), type(method).__name__
        first = session.json_params(bot, calls[0])
        assert first["parse_mode"] == "HTML" and first["link_preview_options"] == {"is_disabled": True}
        assert "text" not in session.json_params(bot, calls[3])  # an empty string is left out, as in the form
        assert session.json_params(bot, BanChatMember(chat_id=1, user_id=2, until_date=timedelta(days=1)))
        upload = SendDocument(chat_id=5, document=BufferedInputFile(b"a,b", filename="x.csv"))
        assert session.json_params(bot, upload) is None  # a file: aiogram's multipart form
    finally:
        await session.close()


async def test_the_request_is_one_json_body_and_a_file_still_goes_as_multipart():
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.methods import SendDocument
    from aiogram.types import BufferedInputFile
    from aiohttp import web

    seen: list[tuple[str, str, str]] = []

    async def api(request: web.Request) -> web.Response:
        seen.append((request.match_info["method"], request.content_type, (await request.read()).decode()[:200]))
        return web.json_response(json.loads(SENT))

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    session = BotSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}"))
    bot = Bot(TOKEN, session=session)
    try:
        sent = await bot.send_message(5, "hi there")
        assert isinstance(sent, Message) and sent.message_id == 7  # read as before when someone reads it
        await bot(SendDocument(chat_id=5, document=BufferedInputFile(b"a,b", filename="x.csv")))
    finally:
        await session.close()
        await runner.cleanup()
    (name, kind, body), (upload_name, upload_kind, _) = seen
    assert (name, kind) == ("sendMessage", "application/json")
    assert json.loads(body) == {"chat_id": 5, "text": "hi there"}
    assert (upload_name, upload_kind) == ("sendDocument", "multipart/form-data")


async def test_a_reply_is_sent_with_the_parameters_kept_on_its_marker(monkeypatch):
    """bot.replies.dump builds each reply's JSON parameters once, for the update's marker (the bot's
    defaults filled in), and send posts those very parameters; a replay from the marker sends the same."""
    from aiogram.client.default import DefaultBotProperties
    from aiogram.methods import AnswerCallbackQuery
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

    from bot.replies import ReplyBuffer, dump, load, send

    session = BotSession()
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    posted: list[dict[str, Any]] = []

    async def post(_session: Any, bot: Bot, method: Any, timeout: Any = None) -> Any:
        posted.append(session.request_params(bot, method))
        return True

    replies = ReplyBuffer()
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="y")]])
    replies.extend([AnswerCallbackQuery(callback_query_id="q1"),
                    SendMessage(chat_id=5, text="<b>hi</b>", reply_markup=markup)])
    stored = dump(replies, bot)
    assert stored is not None
    assert stored[1]["args"] == {"chat_id": 5, "text": "<b>hi</b>", "parse_mode": "HTML",
                                 "reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}}
    built = []
    monkeypatch.setattr(BotSession, "make_request", post)
    monkeypatch.setattr(BotSession, "json_params", lambda self, *a: built.append(a) or {"built": "again"})
    await send(bot, replies)
    assert posted == [item["args"] for item in stored] and built == []  # as kept, not built again
    await send(bot, load(json.loads(json.dumps(stored))))  # after a crash: rebuilt from the marker
    assert len(built) == 2
    await session.close()


async def test_replies_go_out_lane_by_lane_each_in_order(monkeypatch):
    """bot.replies.send: the answer to the press, the edit marking the answer given and the next question
    do not wait for one another (the prospect sees the question one round trip after the commit); calls on
    one message keep their order, and so do the new messages of a chat."""
    import asyncio

    from aiogram.methods import AnswerCallbackQuery, EditMessageReplyMarkup, EditMessageText

    from bot.replies import ReplyBuffer, send

    session = BotSession()
    bot = Bot(TOKEN, session=session)
    started: dict[str, asyncio.Event] = {}
    order: list[str] = []
    overlapped: dict[str, bool] = {}

    def name_of(method: Any) -> str:
        return getattr(method, "text", None) or type(method).__name__

    async def held_until(name: str, other: str) -> None:
        """Telegram slow to answer `name`: it returns once `other` has been sent meanwhile (or after 2 s)."""
        try:
            await asyncio.wait_for(started.setdefault(other, asyncio.Event()).wait(), 2)
            overlapped[name] = True
        except TimeoutError:
            overlapped[name] = False

    async def post(_session: Any, bot: Bot, method: Any, timeout: Any = None) -> Any:
        name = name_of(method)
        order.append(name)
        started.setdefault(name, asyncio.Event()).set()
        if isinstance(method, AnswerCallbackQuery):
            await held_until(name, "a")
        elif name == "a":
            await held_until(name, "next")
        elif name == "next":
            await asyncio.sleep(0.01)
        order.append(f"done {name}")
        return True

    monkeypatch.setattr(BotSession, "make_request", post)
    replies = ReplyBuffer()
    replies.extend([AnswerCallbackQuery(callback_query_id="q"), EditMessageText(chat_id=5, message_id=1, text="a"),
                    EditMessageReplyMarkup(chat_id=5, message_id=1), SendMessage(chat_id=5, text="next"),
                    SendMessage(chat_id=5, text="and then")])
    await send(bot, replies)
    assert overlapped == {"AnswerCallbackQuery": True, "a": True}
    assert order.index("EditMessageReplyMarkup") > order.index("done a")  # one message: text, then keyboard
    assert order.index("and then") > order.index("done next")  # a chat's new messages: one after the other
    await session.close()
