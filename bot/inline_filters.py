"""Synchronous filters run in the event loop, not in a thread.

aiogram calls every callback that is not a coroutine function through `asyncio.to_thread`, and filters
are such callbacks: a magic filter (`F.chat.type == "private"` resolves synchronously), a `State`
(`Flow.step`), a lambda. An update of the dialogue went through about six of them, so six hand-offs to
the thread pool and back (a queue put, a thread wake-up, a loop wake-up each), for predicates that take
microseconds. With the bot on one core, those hand-offs are context switches on that core.

`install()` makes `FilterObject.call` run a synchronous filter in place; coroutine filters and `Filter`
instances are awaited as before, and handlers (`HandlerObject`) are not touched: a synchronous handler
still runs in a thread, as aiogram documents. A filter must therefore not block, which is what a filter
is for (every filter in `handlers/` is a predicate over the update and the FSM state).
"""
from __future__ import annotations

from functools import partial
from typing import Any

from aiogram.dispatcher.event.handler import FilterObject


async def call_in_place(self: FilterObject, *args: Any, **kwargs: Any) -> Any:
    wrapped = partial(self.callback, *args, **self._prepare_kwargs(kwargs))
    if self.awaitable:
        return await wrapped()
    return wrapped()


def install() -> None:
    """Idempotent; done by `bot.app.create_app`."""
    FilterObject.call = call_in_place  # type: ignore[method-assign]
