"""The Bot API session: aiogram's aiohttp session, with orjson, and no parsing of answers nobody reads.

aiogram parses every answer into its result type (`Response[Message]` for a sent message: the whole
message, its chat, its keyboard). The direct replies of an update are sent after its commit by
`bot.replies.send`, which reads none of them; that parsing was about 3 % of an update's CPU. While
`results_unused()` is active, a successful answer is checked for `"ok": true` and its result left as
JSON (the call returns None); an error still goes through aiogram's own parsing, so every exception
(flood waits with `retry_after`, forbidden, bad request...) is raised as before.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.methods import Response, TelegramMethod

_results_unused: ContextVar[bool] = ContextVar("results_unused", default=False)
_OK: Response[Any] = Response[Any].model_construct(ok=True, result=None)


@contextlib.contextmanager
def results_unused() -> Iterator[None]:
    token = _results_unused.set(True)
    try:
        yield
    finally:
        _results_unused.reset(token)


class SkipUnusedResults(BaseSession):
    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Any:
        if _results_unused.get() and HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            with contextlib.suppress(Exception):  # not JSON, or not an object: aiogram's own error below
                if self.json_loads(content).get("ok") is True:
                    return _OK
        return super().check_response(bot, method, status_code, content)


class BotSession(SkipUnusedResults, AiohttpSession):
    """What `bot.app.create_bot` uses."""
