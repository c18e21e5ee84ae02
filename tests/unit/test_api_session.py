"""bot/api_session.py: answers nobody reads are not parsed; errors are raised as aiogram raises them."""
from __future__ import annotations

import json

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
