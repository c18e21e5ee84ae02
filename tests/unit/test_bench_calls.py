"""The call benchmark (`tests.bench.calls`) makes every call it times a real message the emulator took, and
gives the process its cores back. Nothing here depends on timing."""
from __future__ import annotations

import os

from tests.bench import calls


async def test_every_call_of_the_call_bench_is_a_message_the_emulator_took():
    cores = os.sched_getaffinity(0)
    result = await calls.measure(calls=10, repeats=1)
    assert os.sched_getaffinity(0) == cores  # the test process is not left pinned
    assert result["messages_sent"] == 3 * (calls.WARMUP + 10)  # three ways, each warm-up and measured call
    assert set(result["cpu_us_per_call"]) == {"raw", "reply", "parsed"}
