"""The in-process benchmark drives the real dialogue to the end (a lead per dialogue, no dead letter), so
what it times is the real path and not an error reply. Nothing here depends on timing."""
from __future__ import annotations

from tests.bench.inprocess import measure


async def test_every_dialogue_of_the_in_process_bench_becomes_a_lead():
    result = await measure(rounds=1, prospects=2, warmup=1)
    assert result["updates"] == 2 * 14
    assert result["leads"] == result["dialogues"] == 3 and result["dead_letters"] == 0
    assert result["bot_api_calls_per_update"] > 1  # replies were really made (and answered by the stub)


async def test_instructions_are_counted_over_the_measured_rounds_only():
    switched: list[bool] = []
    result = await measure(rounds=1, prospects=1, warmup=1, counting=switched.append)
    assert switched == [True, False] and result["updates"] == 14
