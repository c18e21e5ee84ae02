"""Long polling that confirms an update to Telegram only after its handler has committed.

aiogram's own polling moves the offset past an update as soon as it is read. Here the offset never
passes an update still in flight: on SIGKILL everything unfinished is delivered again (and the
unit of work drops what was already committed); on SIGTERM we stop reading, finish what is in
flight, confirm it, and exit.

An update that raises out of the dispatcher (the unit of work turns handler errors into dead letters,
so this is the database being busy or away: nothing was committed) is handled again with backoff and
stays unconfirmed meanwhile; when the bot stops first, it is left for the next start.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Update

from bot.middlewares import log_text

log = logging.getLogger(__name__)


class GetRawUpdates(GetUpdates):
    """getUpdates without parsing: validating every returned update into pydantic models is the
    expensive part, and most of them are still in flight from an earlier call."""

    __returning__ = list[dict[str, Any]]
RETRY_FIRST, RETRY_CAP = 0.5, 30.0
# While updates are in flight every getUpdates returns them again (the offset waits for them), so asking
# after each one finishes costs a re-download and JSON decode of all the others: the more are in flight,
# the longer between two calls (0.2 ms per update in flight, at most 20 ms; a lone update is not delayed).
BUSY_POLL_GAP_PER_UPDATE, BUSY_POLL_GAP_MAX = 0.0002, 0.02
# With as many updates in flight as may run at once (the concurrency), fetching more only queues them
# behind the semaphore and re-downloads the whole window on every call (100 updates decoded for each one
# that finished: 12 % of the bot's CPU under a backlog). So the next call waits until half have finished.


class Poller:
    def __init__(self, bot: Bot, dp: Dispatcher, *, timeout: int = 25, concurrency: int = 64, **kwargs: object):
        self.bot, self.dp = bot, dp
        self.timeout = timeout
        self.kwargs = kwargs
        self.semaphore = asyncio.Semaphore(concurrency)
        self.semaphore_size = concurrency
        self.low_water = concurrency // 2
        self.below_low_water = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.seen: set[int] = set()
        self.unconfirmed: set[int] = set()  # failed when stopping: delivered again at the next start
        self.offset: int | None = None
        self.stopping = asyncio.Event()
        self.handled = 0

    def stop(self) -> None:
        self.stopping.set()

    async def _handle(self, update: Update) -> None:
        delay = RETRY_FIRST
        try:
            while True:
                try:
                    async with self.semaphore:
                        await self.dp.feed_update(self.bot, update, **self.kwargs)
                    return
                except Exception as exc:  # noqa: BLE001 - nothing was committed: handle it again
                    if self.stopping.is_set():
                        log.warning("update %s not handled (%s); left for the next start",
                                    update.update_id, log_text(exc))
                        self.unconfirmed.add(update.update_id)
                        return
                    log.warning("update %s could not be handled (%s); trying again in %.1f s",
                                update.update_id, log_text(exc), delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), delay)
                    delay = min(delay * 2, RETRY_CAP) * random.uniform(0.8, 1.2)
        finally:
            self.handled += 1

    def _confirmable_offset(self) -> int | None:
        if self.inflight or self.unconfirmed:
            return min({*self.inflight, *self.unconfirmed})
        if self.seen:
            return max(self.seen) + 1
        return self.offset

    def _schedule(self, update: Update) -> None:
        self.seen.add(update.update_id)
        task = asyncio.create_task(self._handle(update), name=f"update-{update.update_id}")
        self.inflight[update.update_id] = task
        task.add_done_callback(lambda _t, uid=update.update_id: self._finished(uid))

    def _finished(self, update_id: int) -> None:
        self.inflight.pop(update_id, None)
        if len(self.inflight) <= self.low_water:
            self.below_low_water.set()

    async def _backlog_drained(self) -> bool:
        """With the semaphore's worth of updates in flight, wait until half have finished; False when stopping."""
        if len(self.inflight) < self.semaphore_size:
            return True
        self.below_low_water.clear()
        stop = asyncio.ensure_future(self.stopping.wait())
        drained = asyncio.ensure_future(self.below_low_water.wait())
        await asyncio.wait({stop, drained}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        drained.cancel()
        return not self.stopping.is_set()

    async def run(self) -> None:
        allowed = self.dp.resolve_used_update_types()
        delay = 0.5
        loop = asyncio.get_running_loop()
        last_fetch = -BUSY_POLL_GAP_MAX
        while not self.stopping.is_set():
            if not await self._backlog_drained():
                break
            if self.inflight:
                busy_gap = min(BUSY_POLL_GAP_MAX, BUSY_POLL_GAP_PER_UPDATE * len(self.inflight))
                gap = last_fetch + busy_gap - loop.time()
                if gap > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), gap)
                    if self.stopping.is_set():
                        break
            self.offset = self._confirmable_offset()
            self.seen = {uid for uid in self.seen if self.offset is None or uid >= self.offset}
            wait_for_new = 0 if self.inflight else self.timeout
            last_fetch = loop.time()
            fetch = asyncio.ensure_future(self.bot(
                GetRawUpdates(offset=self.offset, timeout=wait_for_new, allowed_updates=allowed),
                request_timeout=self.timeout + 10,
            ))
            stop = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if fetch not in done:
                fetch.cancel()
                break
            stop.cancel()
            try:
                updates = fetch.result()
            except Exception as exc:  # noqa: BLE001 - keep polling through outages, with backoff
                log.warning("getUpdates failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30) * random.uniform(0.8, 1.2)
                continue
            delay = 0.5
            # updates still in flight come back on every call (the offset waits for them): parse only new ones
            fresh = [Update.model_validate(raw, context={"bot": self.bot}) for raw in updates
                     if raw["update_id"] not in self.seen and (self.offset is None or raw["update_id"] >= self.offset)]
            for update in fresh:
                self._schedule(update)
            if not fresh and self.inflight:
                await asyncio.wait(set(self.inflight.values()), timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
        await self.drain()

    async def drain(self) -> None:
        """Finish updates in flight and confirm them, so nothing is handled twice after a clean stop."""
        if self.inflight:
            log.info("finishing %d update(s) in flight", len(self.inflight))
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        offset = self._confirmable_offset()
        if offset is not None:
            try:
                await self.bot(GetUpdates(offset=offset, timeout=0, limit=1))
            except Exception as exc:  # noqa: BLE001
                log.warning("could not confirm the last updates: %s", exc)
