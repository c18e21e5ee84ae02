"""Synchronous filters (magic filters, states, lambdas) run in the event loop's thread, not aiogram's
thread pool (bot/inline_filters.py), and the dialogue's own filters still route as before."""
from __future__ import annotations

import threading

from tests.flow.conftest import person


async def test_sync_filters_run_in_the_loop_thread_and_still_route(app, feed):
    threads: list[int] = []

    def probe(message: object) -> bool:  # a plain function: aiogram alone would run it in a thread
        threads.append(threading.get_ident())
        return True

    app.dp.message.filter(probe)
    alice = person(1001)
    await feed.message(alice, "/start")
    await feed.press_text(alice, 1001, "I agree")
    await feed.message(alice, "Alice Smith")  # routed by `Flow.step, F.text, ~F.text.startswith("/")`

    assert threads and set(threads) == {threading.get_ident()}
    assert "phone" in (feed.last_bot_text(1001) or "").lower()
