"""The PostgreSQL round-trip benchmark (`tests.bench.pg_rtt`) really compares the unit of work with and
without `bot.db.first_read`, through its delaying proxy. Nothing here depends on timing."""
from __future__ import annotations

import pytest

from tests.bench import pg_rtt
from tests.bench.harness import postgres_available
from tests.bench.load import DIALOGUE

pytestmark = pytest.mark.postgres


async def test_the_halves_differ_only_in_first_read_and_go_through_the_proxy():
    if (why := await postgres_available()) is not None:
        pytest.skip(why)
    result = await pg_rtt.measure(rounds=1, prospects=1, delay_ms=0.0, port=6544)
    assert result["updates_each"] == len(DIALOGUE)
    assert result["begins_per_update_without"] == 1.0  # every update one transaction, as before the change
    # with it, only /start, the confirmation and /manager begin one (they write before their last writes)
    assert result["begins_per_update_with"] == round(3 / len(DIALOGUE), 3)
    assert result["rtt_ms"] > 0 and result["rounds"] == 1
