"""What `bot.db.first_read` saves when PostgreSQL is on another host: the dialogue fed in-process (as
`tests.bench.inprocess`), its database reached through a TCP proxy that holds every chunk `--delay-ms` in
each direction (a process of its own, on the other core), in rounds that alternate the unit of work with
and without `first_read()`, so that both halves see the same machine. It prints the wall time per update
of each half, the paired difference and the proxy's measured round trip:

    python -m tests.bench.pg_rtt --delay-ms 0.5 --rounds 20

PostgreSQL must be up on 127.0.0.1:5432 (a fresh database is made and dropped, as the bench does).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
from typing import Any

from tests.bench.harness import ROOT, Cores

PG_PORT = 5432


# ----------------------------------------------------------------------------------------- the proxy


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
    finally:
        queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await task


async def proxy(port: int, delay: float) -> None:
    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", PG_PORT)
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay),
                             return_exceptions=True)

    if (cores := Cores.plan()).harness is not None:  # the other core than the bot's, as the bench's emulator
        os.sched_setaffinity(0, cores.harness)
    server = await asyncio.start_server(connect, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ----------------------------------------------------------------------------------------- the measure


async def measure(rounds: int, prospects: int, delay_ms: float, port: int = 6543) -> dict[str, Any]:
    import asyncpg
    from asyncpg.transaction import Transaction

    import bot.middlewares as unit_of_work
    from bot.db.first_read import NO_FIRST_READ, first_read
    from tests.bench.harness import postgres_database
    from tests.bench.inprocess import Feeder, stub_app
    from tests.bench.load import DIALOGUE

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.pg_rtt", "--proxy", str(port), str(delay_ms),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    begins = {"with": 0, "without": 0}
    real_start = Transaction.start
    mode = "with"

    async def counted_start(self: Any) -> Any:
        begins[mode] += 1
        return await real_start(self)

    try:
        assert child.stdout is not None and (await child.stdout.readline()).strip() == b"ready"
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="test")
        for _ in range(10):
            await connection.fetchval("SELECT 1")
        began = time.perf_counter()
        for _ in range(100):
            await connection.fetchval("SELECT 1")
        rtt_ms = (time.perf_counter() - began) * 10
        await connection.close()
        async with postgres_database("pgrtt") as database:
            app, bot, stub = await stub_app(database.url.replace(f":{PG_PORT}/", f":{port}/"))
            Transaction.start = counted_start  # type: ignore[method-assign]
            try:
                feeder, uids = Feeder(app, bot, stub), itertools.count(10_000)
                await feeder.dialogue(next(uids))  # warm-up, not counted
                begins.update({"with": 0, "without": 0})
                wall: dict[str, list[float]] = {"with": [], "without": []}
                for turn in range(2 * rounds):
                    mode = "with" if turn % 2 == 0 else "without"
                    # without: every transaction begins as before the change
                    unit_of_work.first_read = first_read if mode == "with" else lambda: NO_FIRST_READ  # type: ignore[assignment]
                    started = time.perf_counter()
                    for _ in range(prospects):
                        await feeder.dialogue(next(uids))
                    wall[mode].append((time.perf_counter() - started) * 1000 / (prospects * len(DIALOGUE)))
            finally:
                Transaction.start = real_start  # type: ignore[method-assign]
                unit_of_work.first_read = first_read  # type: ignore[assignment]
                await app.close()
    finally:
        child.terminate()
        await child.wait()
    saved = [without - with_ for with_, without in zip(wall["with"], wall["without"], strict=True)]
    updates = rounds * prospects * len(DIALOGUE)
    return {"delay_ms_each_way": delay_ms, "rtt_ms": round(rtt_ms, 3), "updates_each": updates,
            "wall_ms_per_update_with": round(statistics.median(wall["with"]), 3),
            "wall_ms_per_update_without": round(statistics.median(wall["without"]), 3),
            "saved_ms_per_update_median": round(statistics.median(saved), 3),
            "rounds_faster_with": sum(s > 0 for s in saved), "rounds": rounds,
            "begins_per_update_with": round(begins["with"] / updates, 3),
            "begins_per_update_without": round(begins["without"] / updates, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=0.5, help="held in each direction")
    parser.add_argument("--rounds", type=int, default=20, help="pairs of rounds")
    parser.add_argument("--prospects", type=int, default=4, help="dialogues per round")
    parser.add_argument("--proxy", nargs=2, metavar=("PORT", "DELAY_MS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        asyncio.run(proxy(int(args.proxy[0]), float(args.proxy[1]) / 1000))
        return
    cores = Cores.plan()
    if cores.bot is not None:
        os.sched_setaffinity(0, cores.bot)
    print(json.dumps(asyncio.run(measure(args.rounds, args.prospects, args.delay_ms))))


if __name__ == "__main__":
    main()
