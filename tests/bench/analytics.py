"""Analytics benchmark (not a test): generate a large lead history and time /stats, /sources, /export.

    /work/venv/bin/python -m tests.bench.analytics                 # 1,000,000 leads (~5 M history rows)
    /work/venv/bin/python -m tests.bench.analytics --leads 100000  # quicker
    /work/venv/bin/python -m tests.bench.analytics --database-url postgresql+asyncpg://u:p@host/db

The SQLite file lives in the temp directory and is reused when it already holds the same number of
leads (generation of 1 M leads takes a few minutes on 2 cores).  Rows are plain tuples inserted with
executemany; the summary tables are then built with `bot.analytics.models.rebuild` (timed too).
Prints one JSON line with the figures (milliseconds, median of --rounds runs after one warm-up).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.analytics import models as summary
from bot.analytics import queries
from bot.analytics.export import export_period
from bot.analytics.periods import parse_period
from bot.db.models import Base
from funnel import DEFAULT_FUNNEL_PATH, load_funnel

GENERATOR_VERSION = 3
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)  # "now" of the generated world
SPAN_DAYS = 730
SOURCES = (("direct", 40), ("ads_google", 20), ("ads_fb", 15), ("referral", 10), ("partner", 8), ("instagram", 7))
REASONS = ("too_expensive", "competitor", "no_budget", "no_response", "not_a_fit")
MANAGERS = [(7000 + i, f"Manager {i}") for i in range(1, 9)]
MEAN_STAY = {  # seconds
    "new": 300, "qualified": 6 * 3600, "contacted": 2 * 86400, "proposal": 3 * 86400,
    "negotiation": 4 * 86400, "nurture": 20 * 86400,
}
MOVES = {  # stage -> [(target, weight)]; None: the lead stays where it is
    "new": [("qualified", 60), ("nurture", 40)],
    "qualified": [("contacted", 70), ("lost", 14), ("nurture", 8), (None, 8)],
    "contacted": [("proposal", 58), ("negotiation", 5), ("lost", 27), ("nurture", 4), (None, 6)],
    "proposal": [("negotiation", 50), ("won", 14), ("lost", 28), (None, 8)],
    "negotiation": [("won", 52), ("lost", 36), ("proposal", 4), (None, 8)],
    "nurture": [("qualified", 20), ("lost", 30), (None, 50)],
}
INDEXES = (  # the indexes this benchmark recommends on existing tables (see the README)
    "CREATE INDEX IF NOT EXISTS ix_leads_stage_created_amount ON leads (stage, created_at, amount)",
)
DT = "%Y-%m-%d %H:%M:%S.%f"


def fmt(moment: datetime) -> str:
    return moment.strftime(DT)


def _pick(rng: random.Random, options: list[tuple[Any, int]]) -> Any:
    total = sum(w for _, w in options)
    roll = rng.uniform(0, total)
    for value, weight in options:
        roll -= weight
        if roll <= 0:
            return value
    return options[-1][0]


LEAD_COLUMNS = (
    "id", "source", "locale", "name", "phone", "phone_verified", "email", "username", "tg_id", "answers",
    "signals", "score", "fit", "intent", "band", "breakdown", "dialogue_seconds", "stage", "stage_changed_at",
    "outcome", "lost_reason", "amount", "closed_at", "handoff_reason", "handed_off_at", "manager_id",
    "manager_name", "assigned_at", "first_move_at", "anonymized", "created_at", "updated_at",
)
EVENT_COLUMNS = ("lead_id", "kind", "from_stage", "to_stage", "actor_id", "actor_name", "reason", "data", "created_at")
REACHED_COLUMNS = ("lead_id", "stage", "reached_at", "left_at", "lead_created_at", "source")
RUN_COLUMNS = ("source", "started_at", "last_step", "max_step_index", "completed_at", "declined", "lead_id")
TABLES = (("leads", LEAD_COLUMNS), ("lead_events", EVENT_COLUMNS), ("stage_reached", REACHED_COLUMNS),
          ("dialogue_runs", RUN_COLUMNS))


def generate_rows(leads: int, fmt: Any, money: Any, seed: int = 7) -> Iterator[tuple[list[tuple], ...]]:
    """Batches of (leads, lead_events, stage_reached, dialogue_runs) rows as plain tuples. `fmt` turns an
    aware UTC datetime into what the driver wants, `money` a float amount."""
    rng = random.Random(seed)
    funnel = load_funnel(DEFAULT_FUNNEL_PATH)
    steps = len(funnel.steps)
    start = ANCHOR - timedelta(days=SPAN_DAYS)
    # ids ascend with creation time, as in real life
    offsets = sorted(rng.uniform(0, SPAN_DAYS * 86400) for _ in range(leads))
    sources = [(s, w) for s, w in SOURCES]
    lead_rows: list[tuple] = []
    event_rows: list[tuple] = []
    reached_rows: list[tuple] = []
    run_rows: list[tuple] = []
    for number, offset in enumerate(offsets, start=1):
        created = start + timedelta(seconds=offset)
        source = _pick(rng, sources)
        created_s = fmt(created)
        stage, at = "new", created
        reached: dict[str, list] = {"new": [created, None]}
        order = ["new"]
        event_rows.append((number, "created", None, "new", None, None, None, "{}", created_s))
        manager = None
        handed = assigned = first_move = closed = None
        outcome = reason = None
        while True:
            target = _pick(rng, MOVES[stage]) if stage in MOVES else None
            if target is None:
                break
            moved = at + timedelta(seconds=rng.expovariate(1 / MEAN_STAY[stage]))
            if moved >= ANCHOR:
                break
            actor = None
            if stage != "new":  # after the system's placement, moves are made by a manager
                if manager is None:
                    manager = rng.choice(MANAGERS)
                    assigned = min(moved, (handed or at) + timedelta(seconds=rng.expovariate(1 / 1800)))
                    event_rows.append((number, "assign", None, None, manager[0], manager[1], None, "{}",
                                       fmt(assigned)))
                actor = manager
                if first_move is None:
                    first_move = moved
            if target == "qualified" and handed is None:
                handed = moved
                event_rows.append((number, "handoff", None, None, None, None, "qualified", "{}", fmt(moved)))
            if target == "lost":
                reason = rng.choice(REASONS)
                outcome, closed = "lost", moved
            elif target == "won":
                outcome, closed = "won", moved
            if reached[stage][1] is None:
                reached[stage][1] = moved
            event_rows.append((number, "stage", stage, target, actor[0] if actor else None,
                               actor[1] if actor else None, reason if target == "lost" else None, "{}", fmt(moved)))
            stage, at = target, moved
            if stage not in reached:
                reached[stage] = [moved, None]
                order.append(stage)
        for key in order:
            reached_at, left_at = reached[key]
            reached_rows.append((number, key, fmt(reached_at), fmt(left_at) if left_at else None, created_s, source))
        amount = None
        if stage in ("proposal", "negotiation", "won") and rng.random() < 0.7:
            amount = round(rng.uniform(500, 50_000), 2)
        score = rng.randint(0, 100)
        band = "hot" if score >= 60 else "warm" if score >= 30 else "cold"
        lead_rows.append((
            number, source, rng.choice(("en", "uk", "ru")), f"Client {number}", f"+38067{number:07d}",
            rng.random() < 0.6, f"client{number}@example.com", f"client{number}", 10_000_000 + number,
            '{"need": "product", "budget": "5k_20k", "timeline": "this_month"}', "[]", score, score // 2,
            score - score // 2, band, "[]", rng.uniform(40, 600), stage, fmt(at), outcome, reason,
            money(amount) if amount is not None else None,
            fmt(closed) if closed else None, "qualified" if handed else None, fmt(handed) if handed else None,
            manager[0] if manager else None, manager[1] if manager else None, fmt(assigned) if assigned else None,
            fmt(first_move) if first_move else None, False, created_s, fmt(at),
        ))
        run_rows.append((source, fmt(created - timedelta(seconds=120)), "summary", steps,
                         created_s, False, number))
        if rng.random() < 0.3:  # an abandoned (or declined) dialogue as well
            stop = rng.randrange(0, steps)
            run_rows.append((source, fmt(created - timedelta(days=1)), funnel.steps[stop].key, stop, None,
                             stop == 0 and rng.random() < 0.3, None))
        if len(event_rows) >= 200_000:
            yield lead_rows, event_rows, reached_rows, run_rows
            lead_rows, event_rows, reached_rows, run_rows = [], [], [], []
    yield lead_rows, event_rows, reached_rows, run_rows


def generate(path: Path, leads: int, seed: int = 7) -> dict[str, int]:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-200000")
    counts = {"leads": 0, "events": 0, "stage_reached": 0, "dialogue_runs": 0}
    for batch in generate_rows(leads, fmt, lambda amount: amount, seed):
        for (table, columns), rows, key in zip(TABLES, batch, counts, strict=True):
            marks = ",".join("?" * len(columns))
            con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            counts[key] += len(rows)
    con.commit()
    for ddl in INDEXES:
        con.execute(ddl)
    con.execute("INSERT OR REPLACE INTO kv (key, value, updated_at) VALUES (?, ?, ?)",
                ("bench_meta", json.dumps({"leads": leads, "version": GENERATOR_VERSION, **counts}),
                 fmt(datetime.now(UTC))))
    con.commit()
    con.close()
    return counts


async def generate_postgres(url: str, leads: int, seed: int = 7) -> dict[str, int]:
    """The same rows into PostgreSQL with COPY (asyncpg), into the database named in `url`."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from bot.db.engine import create_engine, create_schema

    engine = create_engine(url)
    await create_schema(engine)
    await engine.dispose()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    con = await asyncpg.connect(dsn)
    counts = {"leads": 0, "events": 0, "stage_reached": 0, "dialogue_runs": 0}
    try:
        for table, _ in TABLES:
            await con.execute(f"TRUNCATE {table} CASCADE")
        for batch in generate_rows(leads, lambda moment: moment.replace(tzinfo=None),
                                   lambda amount: Decimal(str(amount)), seed):
            for (table, columns), rows, key in zip(TABLES, batch, counts, strict=True):
                await con.copy_records_to_table(table, records=rows, columns=list(columns))
                counts[key] += len(rows)
        for ddl in INDEXES:
            await con.execute(ddl)
        await con.execute("VACUUM ANALYZE")  # as autovacuum would: sets the visibility map for index-only scans
        await con.execute(
            "INSERT INTO kv (key, value, updated_at) VALUES ('bench_meta', $1, now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            json.dumps({"leads": leads, "version": GENERATOR_VERSION, **counts}))
    finally:
        await con.close()
    return counts


async def existing_postgres(url: str, leads: int) -> dict[str, int] | None:
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        con = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row = await con.fetchval("SELECT value FROM kv WHERE key = 'bench_meta'")
    except asyncpg.PostgresError:
        row = None
    finally:
        await con.close()
    meta = json.loads(row) if isinstance(row, str) else row
    if meta and meta.get("leads") == leads and meta.get("version") == GENERATOR_VERSION:
        return meta
    return None


def existing(path: Path, leads: int) -> dict[str, int] | None:
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(path)
        row = con.execute("SELECT value FROM kv WHERE key = 'bench_meta'").fetchone()
        con.close()
    except sqlite3.Error:
        return None
    if not row:
        return None
    meta = json.loads(row[0])
    if meta.get("leads") == leads and meta.get("version") == GENERATOR_VERSION:
        return meta
    return None


async def timed(make_session: Any, fn: Any, rounds: int) -> tuple[float, Any]:
    samples = []
    result = None
    for i in range(rounds + 1):
        async with make_session() as session:
            began = time.perf_counter()
            result = await fn(session)
            elapsed = (time.perf_counter() - began) * 1000
        if i:
            samples.append(elapsed)
    return round(statistics.median(samples), 1), result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.analytics.report import render_sources, render_stats
    from bot.db.engine import create_engine, create_schema, create_session_factory
    from bot.i18n import Translator

    out: dict[str, Any] = {"leads": args.leads}
    if args.database_url:
        url = args.database_url
        out["database"] = "postgresql"
        meta = await existing_postgres(url, args.leads)
        if meta is None:
            began = time.perf_counter()
            meta = await generate_postgres(url, args.leads)
            out["generate_s"] = round(time.perf_counter() - began, 1)
        out.update(events=meta["events"], stage_reached=meta["stage_reached"], dialogue_runs=meta["dialogue_runs"])
    else:
        path = Path(args.db) if args.db else Path(tempfile.gettempdir()) / f"leadbot_analytics_bench_{args.leads}.sqlite"
        meta = existing(path, args.leads)
        if meta is None:
            path.unlink(missing_ok=True)
            began = time.perf_counter()
            meta = generate(path, args.leads)
            out["generate_s"] = round(time.perf_counter() - began, 1)
        out.update(database="sqlite", file=str(path), file_mb=round(path.stat().st_size / 2**20, 1),
                   events=meta["events"], stage_reached=meta["stage_reached"], dialogue_runs=meta["dialogue_runs"])
        url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await create_schema(engine)  # adds summary tables missing from an older generated file
    make_session = create_session_factory(engine)
    funnel = load_funnel(DEFAULT_FUNNEL_PATH)
    t = Translator("en").for_locale("en")
    tz = __import__("zoneinfo").ZoneInfo(args.timezone)
    now = ANCHOR - timedelta(hours=1)

    async with make_session() as session:
        ready = await summary.summary_ready(session)
    if not ready or args.rebuild:
        began = time.perf_counter()
        async with make_session() as session:
            await summary.rebuild(session)
            await session.commit()
        out["summary_rebuild_s"] = round(time.perf_counter() - began, 1)

    figures: dict[str, Any] = {}
    for text in args.periods:
        period = parse_period(text, tz, now)

        async def do_stats(session: Any, period: Any = period) -> Any:
            data = await queries.stats(session, funnel, period)
            render_stats(data, funnel, t, "en")
            return data

        async def do_sources(session: Any, period: Any = period) -> Any:
            data = await queries.sources(session, funnel, period)
            render_sources(data, period, funnel, t, "en")
            return data

        ms, data = await timed(make_session, do_stats, args.rounds)
        figures[f"stats_{text}_ms"] = ms
        figures[f"stats_{text}_leads"] = data.total
        figures[f"sources_{text}_ms"], _ = await timed(make_session, do_sources, args.rounds)
        if args.raw:
            figures[f"stats_{text}_raw_ms"], _ = await timed(
                make_session, lambda s, p=period: queries.stats(s, funnel, p, use_summary=False), 1)
    for text in args.export_periods:
        period = parse_period(text, tz, now)
        with tempfile.TemporaryDirectory() as folder:
            async with make_session() as session:
                began = time.perf_counter()
                result = await export_period(session, funnel, period, tz, "en", t, Path(folder))
                figures[f"export_{text}_ms"] = round((time.perf_counter() - began) * 1000, 1)
            figures[f"export_{text}_rows"] = result.leads
            figures[f"export_{text}_history_rows"] = result.history
            figures[f"export_{text}_mb"] = round(sum(f.size for f in result.files) / 2**20, 1)
            figures[f"export_{text}_files"] = [f.name for f in result.files]
    for text in args.periods[:1]:
        period = parse_period(text, tz, now)
        figures[f"managers_{text}_ms"], _ = await timed(make_session, lambda s, p=period: queries.managers(s, p), 1)
        figures[f"dropoff_{text}_ms"], _ = await timed(
            make_session, lambda s, p=period: queries.dropoff(s, funnel, p), 1)
    await engine.dispose()
    out.update(figures)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLite file (default: the temp directory)")
    parser.add_argument("--database-url", help="postgresql+asyncpg://... : an existing, empty or bench-filled "
                        "PostgreSQL database instead of the SQLite file (its tables are TRUNCATEd when refilled)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timezone", default="Europe/Kyiv")
    parser.add_argument("--periods", nargs="*", default=["30d", "2026-09", "all"])
    parser.add_argument("--export-periods", nargs="*", default=["30d"])
    parser.add_argument("--raw", action="store_true", help="also time /stats without the summary tables")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the summary tables (timed)")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
