"""Memory with open dialogues: RSS of the bot process with 1,000 and 10,000 prospects mid-dialogue.

Each prospect sends /start, gives consent and answers its name (`load.OPENING`), then stops: its dialogue
stays open (FSM state in the database, the bot's per-user bookkeeping in memory). Once every update is
handled and confirmed (the emulator holds none pending), the resident set of the bot process is read.
"""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench.harness import Child, Database
from tests.bench.load import OPENING, Run


async def wait_idle(http: aiohttp.ClientSession, base_url: str, timeout: float = 120) -> None:
    """Every update the emulator queued was fetched and confirmed (the bot confirms after the commit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with http.get(f"{base_url}/control/state") as resp:
            if (await resp.json())["pending_updates"] == 0:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError("the bot did not confirm every update")


def open_dialogues(db: Database) -> int | None:
    """FSM rows in a dialogue state, read from the SQLite file (None for other databases)."""
    if db.kind != "sqlite":
        return None
    path = Path(db.info["file"])
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM fsm_states WHERE state LIKE 'Flow:%'").fetchone()[0])
    finally:
        con.close()


async def memory_run(http: aiohttp.ClientSession, base_url: str, bot: Child, db: Database,
                     levels: tuple[int, ...], first_uid: int, concurrency: int = 200,
                     timeout: float = 120) -> dict[str, Any]:
    out: dict[str, Any] = {"idle_rss_mb": round(bot.rss_mb(), 1), "levels": {}}
    opened = 0
    async with Run(http, base_url, timeout=timeout) as run:
        for level in levels:
            phase = await run.closed_loop(OPENING, level - opened, first_uid + opened, concurrency=concurrency)
            opened = level
            try:
                await wait_idle(http, base_url)
                idle = True
            except TimeoutError:
                idle = False
            out["levels"][str(level)] = {
                "all_confirmed": idle,
                "rss_mb": round(bot.rss_mb(), 1),
                "peak_rss_mb": round(bot.peak_rss_mb(), 1),
                "open_dialogues": open_dialogues(db),
                "updates": phase["updates"],
                "lost": phase["lost"],
                "updates_per_s": phase.get("updates_per_s"),
            }
    points = sorted((int(k), v["rss_mb"]) for k, v in out["levels"].items())
    if len(points) >= 2:
        (n0, m0), (n1, m1) = points[0], points[-1]
        out["mb_per_1000_dialogues"] = round((m1 - m0) / (n1 - n0) * 1000, 2)
    if points:
        out["growth_over_idle_mb"] = {str(n): round(m - out["idle_rss_mb"], 1) for n, m in points}
    return out
