"""The delivery worker of the transactional outbox (`bot.outbox`).

Handlers write `OutboxMessage` rows in the same transaction as the change that causes them; this worker
sends them after the commit: in id order, strictly FIFO per chat, under Telegram's limits, and records
the result on the row.

Guarantees and their limits
---------------------------
* **Exactly once in the normal case.** A row is marked ``sending`` (committed) *before* the HTTP call and
  ``sent`` with its ``message_id`` (committed) right after it. If the process is killed (SIGKILL, power
  loss) after Telegram accepted the message but before ``sent`` was committed, the row is still
  ``sending`` at the next start and is sent again. So a crash can produce **at most one visible duplicate
  per row that was in flight** - never a lost message. A card's text carries the lead id, so a
  duplicated card is visible but harmless (both cards act on the same lead; the later one is the one
  the lead points at). Rows left in ``sending`` are reset to ``pending`` once, when the worker starts
  (``start()`` or the first ``run_once()``); run one worker per database.
* **Order.** Per chat (``chat_id`` None means the staff chat), rows go strictly in id order: a row
  waiting for a retry blocks the later rows of its chat, other chats keep going. A reply to a lead's
  card waits for the card; when the card row is queued behind the reply, the card is posted first.
* **Pacing.** At most ``group_per_minute`` sends per rolling minute to a group chat (edits are not
  counted there, they are by the per-chat pace), ``chat_per_second`` operations per chat and
  ``global_per_second`` overall. A 429 pauses *all* sending until its ``retry_after`` (Telegram's
  flood wait is bot-wide) and is not counted as a failure.
* **Failures.** 5xx, network errors and timeouts are retried with exponential backoff and jitter
  (capped), and the row is dead after ``max_attempts``. 403 in a private chat marks the prospect
  unreachable and kills the chat's pending rows; 403 in a group (the bot was removed from the staff
  chat) is retried until it is added back, never dead; a migrated group is followed (the staff chat id
  is stored); other 400s are dead at once ("message is not modified" is success).
* **Short transactions.** No transaction is held open across an HTTP call. Logs carry outbox and lead
  ids, never message texts.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    ForceReply,
    FSInputFile,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from sqlalchemy import BigInteger, func, literal, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Lead, OutboxMessage
from bot.logs import mask
from bot.middlewares import writer_lock
from bot.services import reach
from bot.services.reach import BLOCKED_ERROR

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
SEND_KINDS = ("send", "document", "photo", "card")  # new messages (count towards a group's minute)
NO_STAFF_ERROR = "STAFF_CHAT_ID is not set: there is no staff chat to post to"
NOT_MODIFIED = "message is not modified"
CARD_GONE = ("message to edit not found", "message_id_invalid", "message can't be edited")
ERROR_LIMIT = 1000
IMMEDIATE_RETRIES = 3  # a row retried "at once" (migration, card gone) is tried at most this often per call

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
Renderer = Callable[..., Awaitable[tuple[str, InlineKeyboardMarkup]]]


@dataclass
class _Job:
    """One HTTP call, prepared (and the row marked ``sending``) inside a short transaction."""

    row_id: int
    kind: str  # send, document, photo, card, edit
    chat: int  # the chat the call goes to
    lead_id: int | None
    attempts: int
    text: str | None = None
    markup: Any = None
    parse_mode: str | None = None
    reply_to: int | None = None
    path: str | None = None
    caption: str | None = None
    filename: str | None = None
    message_id: int | None = None  # the card to edit
    covers: list[int] = field(default_factory=list)  # pending card_edit rows this render makes obsolete


class _Skip(Exception):
    """Nothing to send for this head row now (it was finalised or must wait)."""

    def __init__(self, finalised: bool = False, ready_at: float | None = None) -> None:
        super().__init__()
        self.finalised = finalised
        self.ready_at = ready_at


def _markup_from(data: dict[str, Any] | None) -> Any:
    if not data:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    if "remove_keyboard" in data:
        return ReplyKeyboardRemove.model_validate(data)
    if "force_reply" in data:
        return ForceReply.model_validate(data)
    return None


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return mask(f"{type(exc).__name__}: {text}")[:ERROR_LIMIT]


class DeliveryWorker:
    """Sends the outbox. ``start()`` runs it in the background; tests drive it with ``run_once``/``flush``.

    Counters for tests and benchmarks: ``sent``, ``retried``, ``dead``, ``rate_limited``, ``collapsed``.
    ``next_ready`` is the clock time at which something may be sendable again (None: nothing pending).
    """

    def __init__(
        self,
        app: Any,
        *,
        group_per_minute: int | None = None,
        chat_per_second: float | None = None,
        global_per_second: float | None = None,
        group_window: float = 60.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        max_attempts: int = 50,
        concurrency: int = 8,
        batch_size: int = 500,
        idle_poll: float = 30.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        render: Renderer | None = None,
    ) -> None:
        settings = app.settings
        self.app = app
        self.group_per_minute = group_per_minute or settings.outbox_group_per_minute
        self.chat_per_second = chat_per_second or settings.outbox_chat_per_second
        self.global_per_second = global_per_second or settings.outbox_global_per_second
        self.group_window = group_window
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_attempts = max_attempts
        self.concurrency = max(1, concurrency)
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.clock = clock  # seconds since the epoch (row times are derived from it)
        self.sleep = sleep
        self.jitter = jitter
        self._render = render

        self.sent = self.retried = self.dead = self.rate_limited = self.collapsed = 0
        self.next_ready: float | None = None
        self.paused_until = 0.0

        self._chat_last: dict[int, float] = {}
        self._group_sends: dict[int, deque[float]] = {}
        self._global: deque[float] = deque()
        self._immediate: set[int] = set()  # rows to retry at once (migration, card gone)
        self._unfinished: list[Callable[[], Awaitable[None]]] = []  # results not yet written
        self._recovered = False
        self._warned_no_staff = False
        self._event = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._run_lock = asyncio.Lock()
        self._db_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(self.concurrency)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="outbox-delivery")

    def wake(self) -> None:
        self._event.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Let the message(s) in flight finish, then stop."""
        self._stopping = True
        self._event.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("delivery worker did not stop within %.0f s; cancelled", timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        log.info("delivery worker started")
        while not self._stopping:
            self._event.clear()
            delay: float
            try:
                processed = await self.run_once()
                if self.next_ready is None:
                    delay = self.idle_poll
                else:
                    delay = min(max(self.next_ready - self.clock(), 0.0), self.idle_poll)
                    if processed == 0:
                        delay = max(delay, 0.01)
            except Exception:  # the worker must survive a database hiccup
                log.exception("delivery round failed; retrying shortly")
                delay = 5.0
            if self._stopping:
                break
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), delay)
            else:
                await asyncio.sleep(0)
        log.info("delivery worker stopped")

    async def flush(self, timeout: float = 30.0) -> bool:
        """Run until no row is pending (True) or `timeout` seconds of the worker's clock passed (False)."""
        deadline = self.clock() + timeout
        while True:
            await self.run_once()
            if self.next_ready is None:
                return True
            now = self.clock()
            if now >= deadline:
                return False
            delay = min(self.next_ready, deadline) - now
            if delay > 0:
                await self.sleep(delay)
            else:
                await asyncio.sleep(0)

    # ------------------------------------------------------------------ helpers

    def _now(self, at: float | None = None) -> datetime:
        return datetime.fromtimestamp(self.clock() if at is None else at, UTC)

    async def _tx(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        """One short transaction (serialised within the worker; retried if SQLite says it is locked)."""
        async with self._db_lock, writer_lock(self.app.engine) or contextlib.nullcontext():
            for attempt in range(5):
                try:
                    async with self.app.session_factory() as session, session.begin():
                        return await work(session)
                except OperationalError as exc:
                    if "locked" not in str(exc).lower() or attempt == 4:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _staff_key(self) -> int:
        staff = self.app.staff.id
        return staff if staff is not None else 0

    def _resolve(self, chat_id: int | None) -> int | None:
        return chat_id if chat_id is not None else self.app.staff.id

    def _backoff(self, attempts: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(attempts - 1, 30))
        return delay / 2 + self.jitter() * delay / 2

    # ------------------------------------------------------------------ pacing

    def _ready_at(self, chat: int, counts_in_minute: bool, now: float) -> float:
        ready = max(now, self.paused_until)
        last = self._chat_last.get(chat)
        if last is not None:
            if last > now + 1.0:  # the clock went backwards
                self._chat_last.pop(chat)
            else:
                ready = max(ready, last + 1.0 / self.chat_per_second)
        if counts_in_minute and chat < 0:
            sends = self._group_sends.get(chat)
            if sends:
                while sends and (sends[0] <= now - self.group_window or sends[0] > now + 1.0):
                    sends.popleft()
                if len(sends) >= self.group_per_minute:
                    ready = max(ready, sends[-self.group_per_minute] + self.group_window)
        per_second = max(1, int(self.global_per_second))
        window = max(1.0, per_second / self.global_per_second)
        while self._global and (self._global[0] <= now - window or self._global[0] > now + 1.0):
            self._global.popleft()
        if len(self._global) >= per_second:
            ready = max(ready, self._global[-per_second] + window)
        return ready

    def _reserve(self, chat: int, counts_in_minute: bool, now: float) -> None:
        self._chat_last[chat] = now
        self._global.append(now)
        if counts_in_minute and chat < 0:
            self._group_sends.setdefault(chat, deque()).append(now)

    def _move_pacing(self, old: int, new: int) -> None:
        if old in self._chat_last:
            self._chat_last[new] = max(self._chat_last[new], self._chat_last[old]) \
                if new in self._chat_last else self._chat_last[old]
        if old in self._group_sends:
            merged = sorted([*self._group_sends.get(new, ()), *self._group_sends[old]])
            self._group_sends[new] = deque(merged)

    # ------------------------------------------------------------------ recovery

    async def _recover(self) -> None:
        """Rows left in "sending" by a crash are sent again (a duplicate is possible, a loss is not).
        The group minute windows are seeded from what was sent in the last minute."""
        now = self.clock()

        async def work(session: AsyncSession) -> list[int]:
            ids = list((await session.scalars(
                select(OutboxMessage.id).where(OutboxMessage.status == SENDING).order_by(OutboxMessage.id)
            )).all())
            if ids:
                await session.execute(
                    update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                    .values(status=PENDING, next_attempt_at=self._now(now))
                    .execution_options(synchronize_session=False)
                )
            recent = await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.sent_at).where(
                    OutboxMessage.status == SENT, OutboxMessage.kind.in_(SEND_KINDS),
                    OutboxMessage.sent_at >= self._now(now - self.group_window),
                    OutboxMessage.message_id.is_not(None),
                )
            )
            for chat_id, sent_at in recent.all():
                chat = self._resolve(chat_id)
                if chat is not None and chat < 0 and sent_at is not None:
                    self._group_sends.setdefault(chat, deque()).append(sent_at.timestamp())
            for sends in self._group_sends.values():
                ordered = sorted(sends)
                sends.clear()
                sends.extend(ordered)
            return ids

        ids = await self._tx(work)
        self._recovered = True
        if ids:
            log.warning(
                "outbox rows %s were being sent when the bot stopped; sending them again "
                "(at most one duplicate each)", ids,
            )

    # ------------------------------------------------------------------ the loop body

    async def run_once(self) -> int:
        """Send everything that is due and allowed by the pacing now; return how many rows were processed
        (sent, retried, dead or collapsed). Does not wait for pacing or backoff: see `next_ready`."""
        async with self._run_lock:
            if not self._recovered:
                await self._recover()
            while self._unfinished:  # results of calls made while the database was away
                await self._unfinished[0]()
                self._unfinished.pop(0)
            processed = 0
            attempted: dict[int, int] = {}  # row id -> attempts in this call
            while not self._stopping:
                if self.paused_until > self.clock():
                    self.next_ready = self.paused_until
                    break
                jobs, finalised, hint = await self._claim_round(attempted)
                processed += finalised
                self.next_ready = hint
                if not jobs:
                    if finalised:
                        continue
                    break
                for job in jobs:
                    attempted[job.row_id] = attempted.get(job.row_id, 0) + 1
                await asyncio.gather(*(self._deliver_bounded(job) for job in jobs))
                processed += len(jobs)
            return processed

    async def _claim_round(self, attempted: dict[int, int]) -> tuple[list[_Job], int, float | None]:
        """Pick the head row of every chat; prepare the ones that are due and paced, mark them sending."""
        now = self.clock()
        now_dt = self._now(now)

        async def work(session: AsyncSession) -> tuple[list[_Job], int, float | None]:
            key = func.coalesce(OutboxMessage.chat_id, literal(self._staff_key(), BigInteger()))
            head = func.min(OutboxMessage.id).label("head")
            head_ids = list((await session.scalars(
                select(head).where(OutboxMessage.status.in_((PENDING, SENDING))).group_by(key).order_by(head)
                .limit(self.batch_size)
            )).all())
            if not head_ids:
                return [], 0, None
            rows = (await session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(head_ids)).order_by(OutboxMessage.id)
            )).all()
            jobs: list[_Job] = []
            claimed: set[int] = set()
            finalised = 0
            hint: float | None = None

            def later(at: float) -> None:
                nonlocal hint
                hint = at if hint is None else min(hint, at)

            for row in rows:
                if row.id in claimed or row.status != PENDING:
                    continue  # "sending": in flight (or its result is not written yet): the chat waits
                tries = attempted.get(row.id, 0)
                if tries and (row.id not in self._immediate or tries >= IMMEDIATE_RETRIES):
                    # once per call (a retry "at once" a few times): the next call takes it again
                    later(max(now, row.next_attempt_at.timestamp()))
                    continue
                try:
                    job = await self._prepare(session, row, now, now_dt, attempted, claimed)
                except _Skip as skip:
                    if skip.finalised:
                        finalised += 1
                    elif skip.ready_at is not None:
                        later(skip.ready_at)
                    continue
                except Exception as exc:  # e.g. the card renderer failed: that row only, not the round
                    log.exception("outbox %s (lead %s, %s): could not prepare", row.id, row.lead_id, row.kind)
                    attempted[row.id] = tries + 1
                    self._fail_row(row, exc, now)
                    finalised += 1
                    later(max(now, row.next_attempt_at.timestamp()))
                    continue
                self._immediate.discard(job.row_id)
                claimed.add(job.row_id)
                jobs.append(job)
            if jobs:
                later(now)
            return jobs, finalised, hint

        return await self._tx(work)

    async def _prepare(
        self, session: AsyncSession, row: OutboxMessage, now: float, now_dt: datetime, attempted: dict[int, int],
        claimed: set[int],
    ) -> _Job:
        due = row.next_attempt_at.timestamp()
        if due > now:
            raise _Skip(ready_at=due)
        chat = self._resolve(row.chat_id)
        if chat is None:
            if not self._warned_no_staff:
                self._warned_no_staff = True
                log.error("STAFF_CHAT_ID is not set: staff messages and lead cards cannot be posted")
            self._finish_dead(row, NO_STAFF_ERROR)
            raise _Skip(finalised=True)

        lead: Lead | None = None
        if row.kind == "send" and (row.payload or {}).get("reply_to_card") and row.lead_id is not None:
            lead = await session.get(Lead, row.lead_id)
            if lead is not None and lead.card_message_id is None:
                card = await self._pending_card(session, row.lead_id)
                if card is not None:
                    # the reply waits for its card; when the card is queued behind it, post the card first
                    if card.id in attempted or card.id in claimed or card.status != PENDING \
                            or card.next_attempt_at.timestamp() > now:
                        raise _Skip(ready_at=max(now, card.next_attempt_at.timestamp()))
                    row, lead = card, None
                    chat = self._resolve(row.chat_id)
                    if chat is None:
                        self._finish_dead(row, NO_STAFF_ERROR)
                        raise _Skip(finalised=True)
        if row.kind == "card_edit":
            lead = await session.get(Lead, row.lead_id) if row.lead_id is not None else None
            if lead is None:
                self._finish_dead(row, "the lead no longer exists")
                raise _Skip(finalised=True)
            if lead.card_message_id is None:
                if await self._pending_card(session, lead.id) is not None:
                    self._finish_sent(row, now_dt)  # the card post renders the current state anyway
                    self.collapsed += 1
                    log.debug("outbox %s: edit of lead %s covered by the pending card post", row.id, lead.id)
                    raise _Skip(finalised=True)
                self._finish_dead(row, "the lead has no card to edit")
                raise _Skip(finalised=True)
            target = int(lead.card_chat_id or chat)
        else:
            target = chat
        counts = row.kind in SEND_KINDS
        ready = self._ready_at(target, counts, now)
        if ready > now:
            raise _Skip(ready_at=ready)

        job = _Job(row_id=row.id, kind=row.kind, chat=target, lead_id=row.lead_id, attempts=row.attempts)
        payload = row.payload or {}
        if row.kind == "send":
            job.text = payload.get("text") or ""
            job.markup = _markup_from(payload.get("reply_markup"))
            job.parse_mode = payload.get("parse_mode")
            job.reply_to = payload.get("reply_to_message_id")
            if payload.get("reply_to_card") and row.lead_id is not None:
                lead = lead or await session.get(Lead, row.lead_id)
                if lead is not None and lead.card_message_id is not None and lead.card_chat_id == target:
                    job.reply_to = lead.card_message_id
                elif lead is not None and lead.card_message_id is not None:
                    log.info("outbox %s: the card of lead %s is in another chat; not threaded", row.id, lead.id)
        elif row.kind in ("document", "photo"):
            job.path, job.caption, job.filename = payload.get("path"), payload.get("caption"), payload.get("filename")
            if not job.path or not os.path.isfile(job.path):
                self._finish_dead(row, f"{row.kind} file not found")
                raise _Skip(finalised=True)
        elif row.kind in ("card", "card_edit"):
            lead = lead or (await session.get(Lead, row.lead_id) if row.lead_id is not None else None)
            if lead is None:
                self._finish_dead(row, "the lead no longer exists")
                raise _Skip(finalised=True)
            job.covers = list((await session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.lead_id == lead.id, OutboxMessage.kind == "card_edit",
                    OutboxMessage.status == PENDING, OutboxMessage.id != row.id,
                )
            )).all())
            job.text, job.markup = await self._render_card(session, lead)
            if row.kind == "card_edit":
                job.kind, job.message_id = "edit", lead.card_message_id
        else:
            self._finish_dead(row, f"unknown outbox kind {row.kind!r}")
            raise _Skip(finalised=True)

        claim = await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id, OutboxMessage.status == PENDING)
            .values(status=SENDING).execution_options(synchronize_session=False)
        )
        if claim.rowcount != 1:  # taken by someone else meanwhile
            raise _Skip()
        self._reserve(target, counts, now)
        return job

    async def _pending_card(self, session: AsyncSession, lead_id: int) -> OutboxMessage | None:
        return await session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.lead_id == lead_id, OutboxMessage.kind == "card",
                OutboxMessage.status.in_((PENDING, SENDING)),
            ).order_by(OutboxMessage.id).limit(1)
        )

    async def _render_card(self, session: AsyncSession, lead: Lead) -> tuple[str, InlineKeyboardMarkup]:
        render = self._render
        if render is None:
            from bot.cards import render_card

            render = render_card
        settings = self.app.settings
        return await render(
            session, lead, funnel=self.app.funnel, translator=self.app.translator,
            locale=settings.default_locale, tz=settings.tz,
        )

    # ------------------------------------------------------------------ one HTTP call

    async def _call(self, job: _Job) -> int | None:
        bot = self.app.bot
        if job.kind == "edit":
            kwargs: dict[str, Any] = {"reply_markup": job.markup}
            result = await bot.edit_message_text(
                text=job.text or "", chat_id=job.chat, message_id=job.message_id, **kwargs
            )
            return getattr(result, "message_id", None) or job.message_id
        if job.kind in ("send", "card"):
            kwargs = {"reply_markup": job.markup}
            if job.parse_mode is not None:
                kwargs["parse_mode"] = job.parse_mode
            if job.reply_to is not None:
                kwargs["reply_parameters"] = ReplyParameters(
                    message_id=job.reply_to, allow_sending_without_reply=True
                )
            message = await bot.send_message(job.chat, job.text or "", **kwargs)
            return message.message_id
        assert job.path is not None
        upload = FSInputFile(job.path, filename=job.filename)
        if job.kind == "photo":
            message = await bot.send_photo(job.chat, upload, caption=job.caption)
        else:
            message = await bot.send_document(job.chat, upload, caption=job.caption)
        return message.message_id

    async def _deliver_bounded(self, job: _Job) -> None:
        async with self._semaphore:
            await self._deliver(job)

    async def _deliver(self, job: _Job) -> None:
        outcome = await self._attempt(job)
        try:
            await outcome()
        except Exception:  # the database is away: keep the outcome, record it on the next call
            log.exception("outbox %s: could not record the result yet; will retry", job.row_id)
            self._unfinished.append(outcome)

    async def _attempt(self, job: _Job) -> Callable[[], Awaitable[None]]:
        """Make the HTTP call; return the (database) outcome to record."""
        try:
            message_id = await self._call(job)
        except TelegramRetryAfter as exc:
            return functools.partial(self._rate_limited, job, exc)
        except TelegramMigrateToChat as exc:
            return functools.partial(self._migrated, job, exc.migrate_to_chat_id)
        except TelegramForbiddenError as exc:
            if job.chat > 0:
                return functools.partial(self._blocked, job, exc)
            # removed from the staff group: retried (capped backoff) until it is added back, never dead
            return functools.partial(self._retry, job, exc, give_up=False)
        except TelegramEntityTooLarge as exc:
            return functools.partial(self._dead, job, exc)
        except (TelegramBadRequest, TelegramNotFound) as exc:
            description = exc.message.lower()
            if NOT_MODIFIED in description:
                return functools.partial(self._succeeded, job, job.message_id)
            if job.kind == "edit" and any(part in description for part in CARD_GONE):
                return functools.partial(self._card_gone, job)
            return functools.partial(self._dead, job, exc)
        except (
            TelegramServerError, TelegramNetworkError, ClientDecodeError, aiohttp.ClientError,
            TimeoutError, OSError,
        ) as exc:
            return functools.partial(self._retry, job, exc)
        except TelegramAPIError as exc:  # 401, 409, unknown codes: retried with backoff, dead in the end
            return functools.partial(self._retry, job, exc)
        except Exception as exc:  # a bug must not lose the row
            log.exception("outbox %s: unexpected error while sending", job.row_id)
            return functools.partial(self._retry, job, exc)
        return functools.partial(self._succeeded, job, message_id)

    # ------------------------------------------------------------------ outcomes

    def _finish_sent(self, row: OutboxMessage, at: datetime, message_id: int | None = None) -> None:
        row.status, row.sent_at, row.error = SENT, at, None
        if message_id is not None:
            row.message_id = message_id

    def _finish_dead(self, row: OutboxMessage, error: str) -> None:
        row.status, row.error = DEAD, error[:ERROR_LIMIT]
        self.dead += 1
        level = logging.DEBUG if error == NO_STAFF_ERROR else logging.WARNING  # that one is logged once
        log.log(level, "outbox %s (lead %s, %s) is dead: %s", row.id, row.lead_id, row.kind, error)

    def _fail_row(self, row: OutboxMessage, exc: BaseException, now: float) -> None:
        """A failure before the HTTP call (inside the claim transaction): backoff, dead in the end."""
        row.attempts += 1
        row.error = _error_text(exc)
        if row.attempts >= self.max_attempts:
            row.status = DEAD
            self.dead += 1
        else:
            row.status, row.next_attempt_at = PENDING, self._now(now + self._backoff(row.attempts))
            self.retried += 1

    async def _succeeded(self, job: _Job, message_id: int | None) -> None:
        at = self._now()

        async def work(session: AsyncSession) -> None:
            row = await session.get(OutboxMessage, job.row_id)
            if row is None:
                return
            self._finish_sent(row, at, message_id)
            if job.kind == "card" and row.lead_id is not None and message_id is not None:
                lead = await session.get(Lead, row.lead_id)
                if lead is not None:
                    lead.card_chat_id, lead.card_message_id = job.chat, message_id
            if job.covers:
                result = await session.execute(
                    update(OutboxMessage).where(
                        OutboxMessage.id.in_(job.covers), OutboxMessage.status == PENDING
                    ).values(status=SENT, sent_at=at, error=None).execution_options(synchronize_session=False)
                )
                self.collapsed += result.rowcount or 0

        await self._tx(work)
        self.sent += 1
        log.debug("outbox %s (lead %s, %s) delivered to chat %s as message %s",
                  job.row_id, job.lead_id, job.kind, job.chat, message_id)

    async def _retry(self, job: _Job, exc: BaseException, *, give_up: bool = True) -> None:
        error = _error_text(exc)
        attempts = job.attempts + 1
        delay = self._backoff(attempts)
        dead = give_up and attempts >= self.max_attempts

        async def work(session: AsyncSession) -> None:
            row = await session.get(OutboxMessage, job.row_id)
            if row is None:
                return
            row.attempts = attempts
            row.error = error
            if dead:
                row.status = DEAD
            else:
                row.status, row.next_attempt_at = PENDING, self._now(self.clock() + delay)

        await self._tx(work)
        if dead:
            self.dead += 1
            log.error("outbox %s (lead %s, %s) is dead after %s attempts: %s",
                      job.row_id, job.lead_id, job.kind, attempts, error)
        else:
            self.retried += 1
            log.info("outbox %s (lead %s, %s) failed (attempt %s), retry in %.1f s: %s",
                     job.row_id, job.lead_id, job.kind, attempts, delay, error)

    async def _dead(self, job: _Job, exc: BaseException, error: str | None = None) -> None:
        error = error or _error_text(exc)

        async def work(session: AsyncSession) -> None:
            row = await session.get(OutboxMessage, job.row_id)
            if row is not None:
                row.attempts = job.attempts + 1
                self._finish_dead(row, error)

        await self._tx(work)

    async def _rate_limited(self, job: _Job, exc: TelegramRetryAfter) -> None:
        until = self.clock() + max(float(exc.retry_after), 0.0)
        self.paused_until = max(self.paused_until, until)
        self.rate_limited += 1

        async def work(session: AsyncSession) -> None:
            row = await session.get(OutboxMessage, job.row_id)
            if row is not None:
                row.status, row.next_attempt_at = PENDING, self._now(until)
                row.error = f"flood wait {exc.retry_after} s"

        await self._tx(work)
        log.warning("outbox %s (lead %s): flood wait %s s in chat %s; all sending paused",
                    job.row_id, job.lead_id, exc.retry_after, job.chat)

    async def _migrated(self, job: _Job, new_id: int) -> None:
        old = job.chat
        staff = self.app.staff

        async def work(session: AsyncSession) -> None:
            if staff.id != new_id and old in (staff.id, staff.configured):
                await staff.migrate(session, new_id)
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.chat_id == old, OutboxMessage.status.in_((PENDING, SENDING)))
                .values(chat_id=new_id).execution_options(synchronize_session=False)
            )
            row = await session.get(OutboxMessage, job.row_id)
            if row is not None:
                row.status, row.next_attempt_at = PENDING, self._now()
                if job.kind == "edit":
                    # message ids do not carry over to the supergroup: post a fresh card there
                    await self._forget_card(session, row, job.message_id)

        await self._tx(work)
        self._move_pacing(old, new_id)
        self._immediate.add(job.row_id)
        log.warning("outbox %s: chat %s migrated to %s; following it", job.row_id, old, new_id)

    async def _card_gone(self, job: _Job) -> None:
        """The card message was deleted: post a new card (the row becomes a card post)."""

        async def work(session: AsyncSession) -> None:
            row = await session.get(OutboxMessage, job.row_id)
            if row is not None:
                row.status, row.next_attempt_at = PENDING, self._now()
                await self._forget_card(session, row, job.message_id)

        await self._tx(work)
        self._immediate.add(job.row_id)
        log.warning("outbox %s: the card of lead %s is gone; posting a new one", job.row_id, job.lead_id)

    @staticmethod
    async def _forget_card(session: AsyncSession, row: OutboxMessage, message_id: int | None) -> None:
        """The lead's card cannot be edited any more: this edit row becomes a post of a new card."""
        if row.lead_id is not None:
            lead = await session.get(Lead, row.lead_id)
            if lead is not None and lead.card_message_id == message_id:
                lead.card_chat_id = lead.card_message_id = None
        row.kind = "card"

    async def _blocked(self, job: _Job, exc: BaseException) -> None:
        """403 in a private chat: the prospect blocked the bot (`bot.services.reach.prospect_blocked`)."""
        chat = job.chat
        error = f"{BLOCKED_ERROR} ({_error_text(exc)})"[:ERROR_LIMIT]

        async def work(session: AsyncSession) -> tuple[int, int | None]:
            row = await session.get(OutboxMessage, job.row_id)
            if row is not None:
                row.status, row.error, row.attempts = DEAD, error, job.attempts + 1
            blocked = await reach.prospect_blocked(session, chat)
            return 1 + blocked.dropped, blocked.lead.id if blocked.lead is not None else None

        count, lead_id = await self._tx(work)
        self.dead += count
        log.warning("outbox %s: chat %s blocked the bot; %s row(s) dead, prospect unreachable (lead %s)",
                    job.row_id, chat, count, lead_id)
        if lead_id is not None:
            self.wake()


def make_clock(start: float | None = None) -> tuple[Clock, Sleep]:
    """A fake clock and sleep for tests: `sleep` advances the clock instantly (and yields once)."""
    now = [time.time() if start is None else start]

    def clock() -> float:
        return now[0]

    async def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.0)
        await asyncio.sleep(0)

    return clock, sleep


__all__ = ["DeliveryWorker", "make_clock"]
