"""The database's JSON columns go through orjson (bot/fastjson.py), and what orjson refuses still round-trips:
a lone surrogate in a prospect's text, an integer beyond 64 bits, a NaN written by the standard library."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.db.engine import create_engine, create_schema, create_session_factory
from bot.db.models import FSMRecord


async def test_json_columns_round_trip_through_orjson_and_its_fallback(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/json.db")
    await create_schema(engine)
    sessions = create_session_factory(engine)
    values = {"plain": {"name": "Алиса", "answers": [1, 2.5, None]}, "surrogate": {"text": "a\ud800b"},
              "huge": {"n": 2**70}}
    try:
        async with sessions() as session:
            session.add_all([FSMRecord(key=key, state="s", data=data) for key, data in values.items()])
            await session.commit()
        async with engine.connect() as conn:
            stored = dict((await conn.execute(text("SELECT key, data FROM fsm_states"))).all())
            await conn.execute(text("INSERT INTO fsm_states (key, state, data, updated_at) "
                                    "VALUES ('nan', 's', '{\"v\": NaN}', '2026-01-01 00:00:00')"))
            await conn.commit()
        assert stored["plain"] == '{"name":"Алиса","answers":[1,2.5,null]}'  # orjson's compact UTF-8
        async with sessions() as session:
            for key, data in values.items():
                assert (await session.get(FSMRecord, key)).data == data
            nan = (await session.get(FSMRecord, "nan")).data["v"]
        assert nan != nan  # noqa: PLR0124 - NaN, read by the fallback
    finally:
        await engine.dispose()
