"""Outer update middlewares, in this order:

1. `IsolationMiddleware`  - one update at a time per user (ten quick messages -> one phone, not ten)
2. `UnitOfWorkMiddleware` - one session per update; drops redelivered updates/messages; commits after
                            the handler; a raising handler becomes a dead letter + a polite apology
3. `ContextMiddleware`    - the prospect row, their locale and texts (`t`), the user's role
4. aiogram's FSM middleware (our database storage joins the update's session)
Flood control sits on private messages, before any handler.

Direct replies are collected while the handler runs and sent after the commit, outside the database's
writer (`bot.replies`). Inside an update, a Telegram 5xx, a network error or a short flood wait on a direct reply is retried
a couple of times (`TransientRetry`, installed on the bot's session by the unit of work), so a blip
does not roll back what the prospect just sent. The outbox worker's own calls are not touched: it has
its own retries, backoff and bot-wide flood wait.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
import weakref
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    GetUpdates,
    SendChatAction,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from sqlalchemy import (
    Select,
    bindparam,
    exists,
    false,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.first_read import NO_FIRST_READ, first_read, reads_first
from bot.db.models import DeadLetter, FSMRecord, ProcessedMessage, ProcessedUpdate, Prospect, utcnow
from bot.db.sqlite_driver import closes_in_place, in_place
from bot.db.tail import Deferred
from bot.db.tail import defer as defer_write
from bot.i18n import Translator
from bot.logs import mask
from bot.outbox import OUTBOX_QUEUED
from bot.replies import ReplyBuffer, current_replies, defer, dump
from bot.replies import load as load_replies
from bot.replies import send as send_replies
from bot.storage import SQLAlchemyStorage, current_session, seed

log = logging.getLogger(__name__)
in_update: ContextVar[bool] = ContextVar("in_update", default=False)  # Bot API calls retried in place
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def update_user(update: Update) -> User | None:
    event = update.event
    return getattr(event, "from_user", None)


def prospect_user(update: Update) -> User | None:
    """The user of an update in their own private chat with the bot (a prospect's row goes with it)."""
    user = update_user(update)
    return user if user is not None and not user.is_bot and update_chat_id(update) == user.id else None


def update_chat_id(update: Update) -> int | None:
    event = update.event
    if isinstance(event, Message):
        return event.chat.id
    if isinstance(event, CallbackQuery) and event.message is not None:
        return event.message.chat.id
    chat = getattr(event, "chat", None)
    return chat.id if chat else None


class IsolationMiddleware(BaseMiddleware):
    def __init__(self, isolation: BaseEventIsolation) -> None:
        self.isolation = isolation

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = update_user(event)
        if user is None:
            return await handler(event, data)
        bot: Bot = data["bot"]
        key = StorageKey(bot_id=bot.id, chat_id=user.id, user_id=user.id, destiny="isolation")
        async with self.isolation.lock(key):
            return await handler(event, data)


class TransientRetry(BaseRequestMiddleware):
    """Collects a direct reply made while a handler runs (`bot.replies`: sent after the commit, so the
    call returns None). Retries a Bot API call made while an update is handled after a 5xx,
    a network error or a flood wait of at most `max_flood_wait` seconds. The waits are short on purpose:
    the update's transaction (and the user's isolation lock) stays open meanwhile. Calls made outside
    an update (the outbox worker, polling) pass straight through."""

    def __init__(self, attempts: int = 3, base: float = 0.25, max_flood_wait: float = 3.0) -> None:
        self.attempts, self.base, self.max_flood_wait = attempts, base, max_flood_wait

    async def __call__(self, make_request: NextRequestMiddlewareType[Any], bot: Bot,
                       method: TelegramMethod[Any]) -> Any:
        if defer(method):
            return None if not isinstance(method, (AnswerCallbackQuery, DeleteMessage, SendChatAction)) else True
        _pin_response_type(method)
        if not in_update.get() or isinstance(method, GetUpdates):
            return await make_request(bot, method)
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramBadRequest as exc:
                description = exc.message.lower()
                if isinstance(method, AnswerCallbackQuery) and EXPIRED_QUERY in description:
                    # the press is handled anyway (e.g. delivered again after a restart); only the
                    # spinner on the button can no longer be stopped
                    log.info("callback query of this update expired; not answered")
                    return True
                if isinstance(method, EDITS) and any(part in description for part in EDIT_NOT_NEEDED):
                    # the message already looks like that, is gone or too old: the update goes on
                    log.info("%s skipped: %s", type(method).__name__, description[:100])
                    return True
                raise
            except TelegramRetryAfter as exc:
                if attempt >= self.attempts or exc.retry_after > self.max_flood_wait:
                    raise
                delay = float(exc.retry_after)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt >= self.attempts:
                    raise
                delay = self.base * 2 ** (attempt - 1) * random.uniform(1.0, 2.0)
                log.info("%s failed inside an update (%s); retry %s in %.2fs",
                         type(method).__name__, type(exc).__name__, attempt, delay)
            attempt += 1
            await asyncio.sleep(delay)


EXPIRED_QUERY = "query is too old"
EDITS = (EditMessageText, EditMessageReplyMarkup, EditMessageCaption)
EDIT_NOT_NEEDED = ("message is not modified", "message to edit not found", "message can't be edited")
TRANSIENT_DB = ("database is locked", "database table is locked", "unable to open database file", "disk i/o error",
                "could not connect", "connection refused", "connection reset", "connection was closed",
                "terminating connection", "server closed the connection", "deadlock detected",
                "could not serialize access")


def is_transient(exc: BaseException) -> bool:
    """The database is busy or away (not a bug in the handler): nothing was committed, and the update
    is handled again later instead of becoming a dead letter."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or any(part in str(exc.orig).lower() for part in TRANSIENT_DB)
    return False


_RESPONSE_TYPES: dict[Any, Any] = {}


def _pin_response_type(method: TelegramMethod[Any]) -> None:
    """aiogram parses every answer with `Response[<result type>]`; pydantic caches such generic classes
    only weakly, so the garbage collector keeps dropping them and each re-creation costs ~10 ms of CPU
    (per call, inside the update's transaction). A strong reference keeps them."""
    returning = getattr(method, "__returning__", None)
    try:
        if returning is not None and returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]
    except TypeError:  # an unhashable result type: nothing to pin
        pass


def install_retry(bot: Bot) -> None:
    """Put `TransientRetry` on the bot's session once (idempotent)."""
    if not any(isinstance(m, TransientRetry) for m in bot.session.middleware):
        bot.session.middleware(TransientRetry())


def error_text(exc: BaseException) -> str:
    """The error without personal data: SQLAlchemy quotes the statement's parameters (names, phones...)
    in its message, so only the driver's own error is kept; phones and e-mails are masked; characters
    that cannot be stored (lone surrogates) are escaped."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        text = f"{type(exc).__name__} ({type(exc.orig).__name__}: {exc.orig})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return safe_text(mask(text))


def log_text(exc: BaseException) -> str:
    """The error for a log line: its kind and where it happened, never its message (which may quote a
    name, a phone or a whole update; the dead letter in the database keeps the details). A database
    error keeps the first line of the driver's message ("database is locked"), without the statement."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        first = (str(exc.orig).splitlines() or [""])[0]
        return safe_text(f"{type(exc).__name__} ({type(exc.orig).__name__}: {mask(first)[:200]})")
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


def safe_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_WRITERS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def writer_lock(engine: AsyncEngine | None) -> asyncio.Lock | None:
    """The one-writer-at-a-time queue of a SQLite database (None for other databases). Whoever writes
    to the same engine in this process can take it (the unit of work does, for every update)."""
    if engine is None or engine.dialect.name != "sqlite":
        return None
    key = engine.sync_engine
    if key not in _WRITERS:
        _WRITERS[key] = asyncio.Lock()
    return _WRITERS[key]


SEEN_UPDATE, SEEN_MESSAGE = 1, 2
# The unit of work's own statements, built once: building them for every update (coercing each column
# and value, the ORM's insert planning) was a fifth of an update's CPU in the profile. Core inserts on the
# tables: the markers' column defaults (processed_at) still apply.
SEEN_UPDATE_QUERY = select(literal(SEEN_UPDATE).label("kind"), ProcessedUpdate.replies).where(
    ProcessedUpdate.update_id == bindparam("update_id")
)
SEEN_QUERY = union_all(SEEN_UPDATE_QUERY, select(literal(SEEN_MESSAGE), null()).where(
    ProcessedMessage.chat_id == bindparam("chat_id"), ProcessedMessage.message_id == bindparam("message_id")
)).order_by("kind")
# written just before the commit, with the update's other last writes (`bot.db.tail`)
MARK_UPDATE = Deferred.insert("mark_update", ProcessedUpdate.__table__,
                              ("update_id", "replies", "chat_id", "processed_at"))
MARK_MESSAGE = Deferred.insert("mark_message", ProcessedMessage.__table__, ("chat_id", "message_id", "processed_at"))


def _first_read(message: bool, fsm: bool) -> Select[Any]:
    """An update from a prospect's private chat reads, in one statement: its markers (as `SEEN_QUERY`),
    the prospect's row (None before their first update) and their FSM row (None when there is none; only
    when the FSM is kept in this database). Three statements before, each with SQLAlchemy's own cost,
    and a round trip each on PostgreSQL. From one row of nothing, joined to the prospect and the FSM row
    by their keys, so it returns exactly one row whatever exists."""
    one = select(literal_column("1").label("one")).subquery("one")
    update_id = ProcessedUpdate.update_id == bindparam("update_id")
    seen_message = exists().where(
        ProcessedMessage.chat_id == bindparam("chat_id"), ProcessedMessage.message_id == bindparam("message_id")
    ) if message else false()
    query = select(
        Prospect,
        exists().where(update_id).label("seen_update"),
        select(ProcessedUpdate.replies).where(update_id).scalar_subquery().label("replies"),
        seen_message.label("seen_message"),
    ).select_from(one).outerjoin(Prospect, Prospect.tg_id == bindparam("tg_id"))
    if fsm:
        table = FSMRecord.__table__
        query = query.add_columns(table.c.key.label("fsm_key"), table.c.state.label("fsm_state"),
                                  table.c.data.label("fsm_data"))
        query = query.outerjoin(table, table.c.key == bindparam("fsm_key"))
    return query


FIRST_READ = {(message, fsm): _first_read(message, fsm) for message in (False, True) for fsm in (False, True)}
PREFETCHED = "prefetched_prospect"  # handler data: the prospect the first read found (None: a new one)


class _Closing:
    """`async with session` (SQLAlchemy's: the close in a shielded task of its own), or, where the close
    cannot suspend (`bot.db.sqlite_driver.closes_in_place`), the close awaited right here."""

    __slots__ = ("in_place", "session")

    def __init__(self, session: AsyncSession, in_place: bool) -> None:
        self.session, self.in_place = session, in_place

    async def __aenter__(self) -> AsyncSession:
        return self.session

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.in_place:
            await self.session.close()
        else:
            await self.session.__aexit__(kind, error, tb)


class UnitOfWorkMiddleware(BaseMiddleware):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        translator: Translator,
        after_commit: Callable[[], None] | None = None,
        fsm: FSMContextMiddleware | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.translator = translator
        self.after_commit = after_commit
        # the FSM's key of an update, when its rows are in this database: read with the markers
        self.fsm = fsm if fsm is not None and isinstance(fsm.storage, SQLAlchemyStorage) else None
        # SQLite has one writer at a time and every update writes (its dedupe marker, first thing), so
        # updates queue here in order instead of polling SQLite's busy lock (which starves some of them
        # past the busy timeout under a burst)
        bind = session_factory.kw.get("bind")
        self.writer = writer_lock(bind)
        self.close_in_place = bind is not None and closes_in_place(bind)
        self.reads_first = bind is not None and reads_first(bind)  # PostgreSQL (bot/db/first_read.py)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        install_retry(data["bot"])
        retrying = in_update.set(True)
        try:
            replies = ReplyBuffer()
            async with self.writer or contextlib.nullcontext():
                result = await self._handle(handler, event, data, replies)
            # committed and the writer released: now tell the user (still inside their isolation lock)
            await send_replies(data["bot"], replies, self.session_factory)
        finally:
            in_update.reset(retrying)
        if result is UNHANDLED and event.callback_query is not None:
            await self._refuse_button(event, data)
        return result

    async def _handle(self, handler: Handler, event: Update, data: dict[str, Any], replies: ReplyBuffer) -> Any:
        session = self.session_factory()
        # short statements on SQLite (bot/db/sqlite_driver.py); on PostgreSQL the first read without BEGIN
        # (bot/db/first_read.py)
        async with _Closing(session, self.close_in_place), in_place(), \
                first_read() if self.reads_first else NO_FIRST_READ as first:
            seen = await self._seen(session, event, data)
            first.read_done()
            if seen is not None:
                kind, stored = seen
                if kind == SEEN_UPDATE:
                    # committed before; its replies may not have gone out (a crash right after the commit)
                    replies.extend(load_replies(stored))
                    log.info("update %s already handled, skipped (%d replies again)", event.update_id, len(replies))
                else:
                    log.info("message of update %s already handled, skipped", event.update_id)
                return None
            token = current_session.set(session)
            collecting = current_replies.set(replies)
            data["session"] = session
            failure: Exception | None = None
            try:
                result = await handler(event, data)
                self._mark_handled(session, event, replies, data["bot"])
                await session.commit()
            except Exception as exc:  # a poison update must not stop the bot
                with contextlib.suppress(Exception):
                    await session.rollback()
                if is_transient(exc):  # the poller (or Telegram, with a webhook) delivers it again
                    log.warning("update %s: the database is busy or away (%s); not handled yet",
                                event.update_id, log_text(exc))
                    raise
                failure = exc
            finally:
                current_replies.reset(collecting)
                current_session.reset(token)
        if failure is not None:
            replies.clear()  # rolled back: the user is told nothing of it, only the apology
            await self._dead_letter(event, failure, data)
            return None
        if self.after_commit is not None and session.info.get(OUTBOX_QUEUED):
            self.after_commit()  # wake the delivery worker only when this update queued something
        return result

    async def _refuse_button(self, update: Update, data: dict[str, Any]) -> None:
        """A press no handler took (forged, garbage or from an old version): answered, nothing changed."""
        assert update.callback_query is not None
        user = update.callback_query.from_user
        t = self.translator.for_locale(self.translator.resolve(user.language_code))
        try:
            await data["bot"].answer_callback_query(update.callback_query.id, text=t("stale-button"))
        except Exception as exc:  # noqa: BLE001 - only the spinner is left
            log.info("could not answer unhandled callback query of update %s: %s", update.update_id,
                     type(exc).__name__)

    async def _seen(self, session: AsyncSession, update: Update, data: dict[str, Any]) -> tuple[int, Any] | None:
        """(SEEN_UPDATE, its replies) for the update's marker, else (SEEN_MESSAGE, None) for the marker of its
        message under another update id (Telegram delivering it again), else None. An update delivered
        again has both; the update's comes first, for its replies. In a prospect's private chat the same
        statement reads their row and their FSM row for the middlewares after this one (`FIRST_READ`)."""
        message = update.message
        user = prospect_user(update)
        params: dict[str, Any] = {"update_id": update.update_id}
        if message is not None:
            params.update(chat_id=message.chat.id, message_id=message.message_id)
        if user is None:
            query = SEEN_QUERY if message is not None else SEEN_UPDATE_QUERY
            found = (await session.execute(query, params)).first()
            return (found.kind, found.replies) if found is not None else None
        params["tg_id"] = user.id
        fsm_key = self._fsm_key(data)
        if fsm_key is not None:
            params["fsm_key"] = fsm_key
        row = (await session.execute(FIRST_READ[message is not None, fsm_key is not None], params)).one()
        if row.seen_update:
            return SEEN_UPDATE, row.replies
        if row.seen_message:
            return SEEN_MESSAGE, None
        data[PREFETCHED] = row[0]
        if fsm_key is not None:
            seed(session, fsm_key, (row.fsm_state, row.fsm_data) if row.fsm_key is not None else None)
        return None

    def _fsm_key(self, data: dict[str, Any]) -> str | None:
        """The key aiogram's FSM middleware will use for this update (the same resolution)."""
        if self.fsm is None:
            return None
        context = self.fsm.resolve_event_context(data["bot"], data)
        return self.fsm.storage.key_of(context.key) if context is not None else None  # type: ignore[attr-defined]

    @staticmethod
    def _mark_handled(session: AsyncSession, update: Update, replies: ReplyBuffer, bot: Bot) -> None:
        """The dedupe markers, in the update's transaction (one INSERT each, the replies with the first),
        written as it commits."""
        stored = dump(replies, bot)
        now = utcnow()
        defer_write(session, MARK_UPDATE, {
            "update_id": update.update_id, "replies": stored, "chat_id": update_chat_id(update) if stored else None,
            "processed_at": now,
        })
        if update.message is not None:
            defer_write(session, MARK_MESSAGE, {
                "chat_id": update.message.chat.id, "message_id": update.message.message_id, "processed_at": now,
            })

    async def _dead_letter(self, update: Update, exc: Exception, data: dict[str, Any]) -> None:
        user = update_user(update)
        error = error_text(exc)
        log.error("update %s failed (%s); kept as a dead letter", update.update_id, log_text(exc))
        try:
            async with self.session_factory() as session, session.begin():
                await session.merge(ProcessedUpdate(update_id=update.update_id))
                if update.message is not None:
                    await session.merge(
                        ProcessedMessage(chat_id=update.message.chat.id, message_id=update.message.message_id)
                    )
                session.add(
                    DeadLetter(
                        update_id=update.update_id,
                        user_id=user.id if user else None,
                        error=error[:4000],
                        traceback=safe_text(mask("".join(traceback.format_exception(exc))))[-20000:],
                        update=update.model_dump(mode="json", exclude_none=True),
                    )
                )
        except Exception as failure:  # its SQL parameters hold the update: log the error only
            log.error("could not store dead letter for update %s: %s", update.update_id, log_text(failure))
            if is_transient(failure):  # not confirmed: handled (and kept) again once the database is back
                raise
        await self._apologise(update, data)

    async def _apologise(self, update: Update, data: dict[str, Any]) -> None:
        bot: Bot = data["bot"]
        user = update_user(update)
        chat_id = update_chat_id(update)
        t = self.translator.for_locale(self.translator.resolve(user.language_code if user else None))
        if update.callback_query is not None:
            try:
                await bot.answer_callback_query(update.callback_query.id, text=t("error-apology"))
                return
            except Exception:  # noqa: BLE001, S110 - usually the handler had answered it: say it in the chat
                pass
        try:
            if chat_id is not None:
                await bot.send_message(chat_id, t("error-apology"))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not apologise for update %s: %s", update.update_id, type(exc).__name__)


class ContextMiddleware(BaseMiddleware):
    """Puts `prospect` (private chats), `locale`, `t` and `role` into the handler data."""

    def __init__(self, translator: Translator, admin_ids: set[int]) -> None:
        self.translator = translator
        self.admin_ids = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = update_user(event)
        session: AsyncSession | None = data.get("session")
        prospect = None
        if session is not None and (owner := prospect_user(event)) is not None:
            prospect = await load_prospect(session, owner, data.pop(PREFETCHED, NOT_READ))
        locale = self.translator.resolve(
            prospect.locale if prospect else None, user.language_code if user else None
        )
        data["prospect"] = prospect
        data["locale"] = locale
        data["t"] = self.translator.for_locale(locale)
        data["is_admin"] = bool(user and user.id in self.admin_ids)
        return await handler(event, data)


PROSPECT_BY_TG_ID = select(Prospect).where(Prospect.tg_id == bindparam("tg_id"))  # built once, as above


NOT_READ: Any = object()


async def load_prospect(session: AsyncSession, user: User, found: Prospect | None = NOT_READ) -> Prospect:
    """The user's prospect row, created on their first update; `found` is what the unit of work's first
    read brought (None: no row yet), else it is read here."""
    prospect = await session.scalar(PROSPECT_BY_TG_ID, {"tg_id": user.id}) if found is NOT_READ else found
    if prospect is None:
        prospect = Prospect(
            tg_id=user.id, chat_id=user.id, username=user.username, first_name=user.first_name,
            tg_language=user.language_code,
        )
        session.add(prospect)
        await session.flush()
    else:
        if prospect.forgotten_at is None and (
            prospect.username != user.username or prospect.first_name != user.first_name
        ):
            prospect.username, prospect.first_name = user.username, user.first_name
        if prospect.tg_language != user.language_code:
            prospect.tg_language = user.language_code
        if prospect.unreachable:
            prospect.unreachable = False  # they wrote to us, so they unblocked the bot
    return prospect


class FloodMiddleware(BaseMiddleware):
    """More than `limit` private messages within `window` seconds mutes a user for `mute` seconds."""

    def __init__(self, limit: int, window: float, mute: float, translator: Translator) -> None:
        self.limit, self.window, self.mute = limit, window, mute
        self.translator = translator
        self.hits: dict[int, deque[float]] = defaultdict(deque)
        self.muted_until: dict[int, float] = {}

    def check(self, user_id: int, now: float) -> str:
        """'ok', 'warn' (just muted: say so once) or 'drop'."""
        until = self.muted_until.get(user_id)
        if until is not None:
            if now < until:
                return "drop"
            del self.muted_until[user_id]
        hits = self.hits[user_id]
        while hits and now - hits[0] > self.window:
            hits.popleft()
        hits.append(now)
        if len(hits) > self.limit:
            hits.clear()
            self.muted_until[user_id] = now + self.mute
            return "warn"
        if not hits:
            del self.hits[user_id]
        return "ok"

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        if event.chat.type != "private" or event.from_user is None:
            return await handler(event, data)
        verdict = self.check(event.from_user.id, time.monotonic())
        if verdict == "ok":
            return await handler(event, data)
        if verdict == "warn":
            t = data.get("t") or self.translator.for_locale(self.translator.resolve(event.from_user.language_code))
            await event.answer(t("flood-slow-down", seconds=int(self.mute)))
        log.info("flood: message from user %s ignored", event.from_user.id)
        return None
