"""The poller's back-pressure: with as many updates in flight as may run at once, it stops asking for
more (each call would download the whole unconfirmed window again) until half of them have finished."""
from __future__ import annotations

import asyncio
from typing import Any

from bot.polling import Poller


class FakeBot:
    """getUpdates over a fixed queue of updates, confirmed by the offset, as Telegram does."""

    id = 1

    def __init__(self, count: int) -> None:
        self.queue = [{"update_id": i, "message": {"message_id": i, "date": 0, "chat": {"id": 5, "type": "private"},
                                                   "text": f"m{i}"}} for i in range(1, count + 1)]
        self.calls: list[int | None] = []

    async def __call__(self, method: Any, request_timeout: int | None = None) -> Any:
        self.calls.append(method.offset)
        if method.offset is not None:
            self.queue = [u for u in self.queue if u["update_id"] >= method.offset]
        if not self.queue:
            await asyncio.sleep(0.01)
        return self.queue[: method.limit or 100]


class BlockingDispatcher:
    def __init__(self) -> None:
        self.release = asyncio.Semaphore(0)
        self.handled: list[int] = []

    def resolve_used_update_types(self) -> list[str]:
        return ["message"]

    async def feed_update(self, bot: Any, update: Any, **kwargs: Any) -> None:
        await self.release.acquire()
        self.handled.append(update.update_id)


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_no_getupdates_while_the_semaphore_is_full_until_half_have_finished():
    bot, dp = FakeBot(30), BlockingDispatcher()
    poller = Poller(bot, dp, timeout=1, concurrency=8)  # type: ignore[arg-type]
    task = asyncio.create_task(poller.run())
    await wait_until(lambda: len(poller.inflight) == 30)
    await asyncio.sleep(0.2)  # ten busy gaps: without back-pressure, ten more calls
    assert len(bot.calls) == 1

    for _ in range(25):  # 30 -> 5 in flight: still above the low-water mark (4)
        dp.release.release()
    await wait_until(lambda: len(dp.handled) == 25)
    await asyncio.sleep(0.05)
    assert len(bot.calls) == 1 and len(poller.inflight) == 5

    dp.release.release()  # 4 in flight: the next call goes out, confirming what finished
    await wait_until(lambda: len(bot.calls) >= 2)
    for _ in range(10):
        dp.release.release()
    await wait_until(lambda: len(dp.handled) == 30)
    poller.stop()
    await asyncio.wait_for(task, 5)
    assert sorted(dp.handled) == list(range(1, 31))
    assert bot.calls[1] is not None and bot.calls[1] > 1  # the finished head was confirmed
