"""Direct replies are sent after the update's commit, not inside its transaction.

While a handler runs, the Bot API calls that only tell the user something (send, edit, answer a button,
delete) are collected instead of sent (`ReplyBuffer`, filled by the request middleware in
`bot.middlewares`). The unit of work commits, releases the database (on SQLite: its single writer), and
then sends them (`send`: each chat's messages in order, an edit of an earlier message and a button
press's answer alongside), still inside the user's isolation lock. So:

- what the user is told has been committed: a failed commit rolls back and nobody was told otherwise;
- no transaction, and no SQLite writer, waits for Telegram's network round trips;
- the replies are also stored on the update's dedupe marker, in the same commit: an update delivered
  again after a crash between the commit and the sends gets them again (at least once, as before);
- a reply that still fails after the in-update retries is handed to the outbox when it is a message
  (the worker keeps retrying it), and logged otherwise.

A handler therefore gets `None` back from such a call; none needs the result (the staff card, whose
message id matters, goes through the outbox).
"""
from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aiogram import Bot, methods
from aiogram.client.default import Default
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    SendChatAction,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import BufferedInputFile, FSInputFile, InputFile
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.api_session import prepared, results_unused

log = logging.getLogger(__name__)

DEFERRED = (SendMessage, EditMessageText, EditMessageReplyMarkup, EditMessageCaption, AnswerCallbackQuery,
            DeleteMessage, SendChatAction, SendPhoto, SendDocument)
UPLOADS = (SendPhoto, SendDocument)  # the deferred ones that can carry a file


class ReplyBuffer(list[TelegramMethod[Any]]):
    """The replies of the update being handled, in the order the handler made them; `params`: the JSON
    parameters `dump` built for them (by the method's id), which `send` sends as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.params: dict[int, dict[str, Any]] = {}

    def clear(self) -> None:
        super().clear()
        self.params.clear()


current_replies: ContextVar[ReplyBuffer | None] = ContextVar("current_replies", default=None)


def defer(method: TelegramMethod[Any]) -> bool:
    """Collect `method` when an update is being handled and it is a reply; True when collected."""
    buffer = current_replies.get()
    if buffer is None or not isinstance(method, DEFERRED):
        return False
    for name in type(method).model_fields if isinstance(method, UPLOADS) else ():
        value = getattr(method, name, None)
        if isinstance(value, FSInputFile):  # a file on disk may be gone by the time we send (temp exports)
            path = Path(value.path)
            setattr(method, name, BufferedInputFile(path.read_bytes(), filename=value.filename or path.name))
    buffer.append(method)
    return True


def _has_upload(method: TelegramMethod[Any]) -> bool:
    return isinstance(method, UPLOADS) and any(
        isinstance(getattr(method, name, None), InputFile) for name in type(method).model_fields)


def dump(replies: list[TelegramMethod[Any]], bot: Bot | None = None) -> list[dict[str, Any]] | None:
    """The replies as JSON for the update's marker (uploads are not kept: they are generated files that
    the admin can ask for again). With the bot's JSON session, each is kept as the parameters it will be
    sent with (the bot's defaults filled in), and those are what `send` sends: built once. Otherwise the
    fields left to the bot's defaults stay out, so they are filled again."""
    json_params = getattr(bot.session, "json_params", None) if bot is not None else None
    params = replies.params if isinstance(replies, ReplyBuffer) else {}
    kept = []
    for method in replies:
        if _has_upload(method):
            continue
        args = json_params(bot, method) if json_params is not None else None
        if args is not None:
            params[id(method)] = args
        else:
            args = to_jsonable_python(_without_defaults(method.model_dump(mode="python", exclude_none=True)))
        kept.append({"method": type(method).__name__, "args": args})
    return kept or None


def _without_defaults(value: Any) -> Any:
    """Drop aiogram's `Default(...)` placeholders at any depth (ReplyParameters has them too)."""
    if isinstance(value, dict):
        return {k: _without_defaults(v) for k, v in value.items() if not isinstance(v, Default)}
    if isinstance(value, list | tuple):
        return [_without_defaults(v) for v in value if not isinstance(v, Default)]
    return value


def load(stored: list[dict[str, Any]] | None) -> list[TelegramMethod[Any]]:
    loaded: list[TelegramMethod[Any]] = []
    for item in stored or ():
        cls = getattr(methods, str(item.get("method")), None)
        if isinstance(cls, type) and issubclass(cls, DEFERRED):
            loaded.append(cls.model_validate(item.get("args") or {}))
    return loaded


EDITS = (EditMessageText, EditMessageReplyMarkup, EditMessageCaption, DeleteMessage)


def _lane(method: TelegramMethod[Any]) -> tuple[Any, ...]:
    """Replies in one lane go one after the other, in the order the handler made them; lanes go at once.

    - the answer to a button press stops its spinner and shows nothing in the chat;
    - an edit (or deletion) of a message already in the chat cannot change where any message appears:
      only the calls on that same message must keep their order (text, then its keyboard);
    - new messages (and chat actions before a file) keep their order, chat by chat.
    A handler never edits a message it sent in the same update: it has no id for it (see above)."""
    if isinstance(method, AnswerCallbackQuery):
        return ("answer", method.callback_query_id)
    if isinstance(method, EDITS):
        return ("message", method.chat_id, method.message_id, getattr(method, "inline_message_id", None))
    return ("chat", getattr(method, "chat_id", None))


async def send(bot: Bot, replies: list[TelegramMethod[Any]],
               session_factory: async_sessionmaker[Any] | None = None) -> None:
    """Send the committed replies, lane by lane (`_lane`): a button press's answer, the edit that marks
    the answer given and the next question go out at the same time, so the prospect sees that question
    one round trip to Telegram after the commit, not two. The request middleware retries blips; what
    still fails is handed to the outbox (messages) or logged (the rest), and the next reply of its lane is
    still sent. Their answers are not parsed (`bot.api_session`)."""
    params = replies.params if isinstance(replies, ReplyBuffer) else {}
    lanes: dict[tuple[Any, ...], list[TelegramMethod[Any]]] = {}
    for method in replies:
        lanes.setdefault(_lane(method), []).append(method)
    if len(lanes) <= 1:
        await _send_in_order(bot, replies, params, session_factory)
        return
    await asyncio.gather(*(_send_in_order(bot, lane, params, session_factory) for lane in lanes.values()))


async def _send_in_order(bot: Bot, replies: list[TelegramMethod[Any]], params: dict[int, dict[str, Any]],
                         session_factory: async_sessionmaker[Any] | None) -> None:
    for method in replies:
        try:
            with results_unused(), prepared(method, params.get(id(method))):
                await bot(method)
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            log.warning("%s after the commit refused: %s", type(method).__name__, exc.message[:100])
        except (TelegramAPIError, OSError, TimeoutError) as exc:
            log.warning("%s after the commit failed (%s)", type(method).__name__, type(exc).__name__)
            if isinstance(method, SendMessage) and session_factory is not None:
                await _to_outbox(session_factory, method)


async def _to_outbox(session_factory: async_sessionmaker[Any], method: SendMessage) -> None:
    from bot.outbox import enqueue_send

    try:
        async with session_factory() as session, session.begin():
            enqueue_send(session, int(method.chat_id), method.text, purpose="reply",
                         reply_markup=method.reply_markup)
    except Exception as exc:  # noqa: BLE001 - the database is away too: the log is what is left
        log.error("could not queue a failed reply for retry: %s", type(exc).__name__)
