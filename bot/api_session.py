"""The Bot API session: aiogram's aiohttp session, with orjson, JSON request bodies, and no parsing of
answers nobody reads.

aiogram sends every call as an HTML form: each parameter prepared (nested objects dumped to JSON one by
one), then url-encoded by aiohttp's `FormData`, about 70 microseconds for a message with a keyboard. The
Bot API takes JSON bodies as well, so a call without files is sent as one orjson-encoded object, with the
same parameters: the same preparation (the bot's defaults filled in, datetimes as Unix times), and the
same ones left out (None and empty strings). A call with a file still goes as aiogram's multipart form.

aiogram parses every answer into its result type (`Response[Message]` for a sent message: the whole
message, its chat, its keyboard). The direct replies of an update are sent after its commit by
`bot.replies.send`, which reads none of them; that parsing was about 3 % of an update's CPU. While
`results_unused()` is active, a successful answer is checked for `"ok": true` and its result left as
JSON (the call returns None); an error still goes through aiogram's own parsing, so every exception
(flood waits with `retry_after`, forbidden, bad request...) is raised as before.

Those replies are also kept on the update's dedupe marker, as JSON, before they are sent
(`bot.replies.dump`): the parameters built for the marker are the ones sent (`prepared`), not built twice.
"""
from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiohttp import ClientError

JSON_HEADERS = {"Content-Type": "application/json"}

_results_unused: ContextVar[bool] = ContextVar("results_unused", default=False)
_OK: Response[Any] = Response[Any].model_construct(ok=True, result=None)


_prepared: ContextVar[tuple[TelegramMethod[Any], dict[str, Any]] | None] = ContextVar("prepared_params", default=None)


@contextlib.contextmanager
def prepared(method: TelegramMethod[Any], params: dict[str, Any] | None) -> Iterator[None]:
    """`method` goes with these JSON parameters, already built (`JsonParams.json_params`) by whoever
    also stored them (`bot.replies.dump`): built once, not twice."""
    token = _prepared.set((method, params) if params is not None else None)
    try:
        yield
    finally:
        _prepared.reset(token)


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


class JsonParams(BaseSession):
    def json_params(self, bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any] | None:
        """The call's parameters as one JSON object, as `build_form_data` would send them; None when the
        call carries a file (multipart, then)."""
        files: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            if isinstance(value, datetime.timedelta):  # aiogram's form sends these as timestamp strings
                value = datetime.datetime.now() + value
            if isinstance(value, datetime.datetime):
                params[key] = round(value.timestamp())
                continue
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":
                params[key] = prepared
        return None if files else params

    def request_params(self, bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any] | None:
        """The call's JSON parameters: the ones `prepared` gave for it, else built now."""
        known = _prepared.get()
        return known[1] if known is not None and known[0] is method else self.json_params(bot, method)


class BotSession(SkipUnusedResults, JsonParams, AiohttpSession):
    """What `bot.app.create_bot` uses."""

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        params = self.request_params(bot, method)
        if params is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:  # as AiohttpSession.make_request, with a JSON body
            async with session.post(url, data=self.json_dumps(params), headers=JSON_HEADERS,
                                    timeout=self.timeout if timeout is None else timeout) as resp:
                raw_result = await resp.text()
        except TimeoutError as error:
            raise TelegramNetworkError(method=method, message="Request timeout error") from error
        except ClientError as error:
            raise TelegramNetworkError(method=method, message=f"{type(error).__name__}: {error}") from error
        return self.check_response(bot, method, resp.status, raw_result).result
