"""`python -m tests.bench` (`make bench`): the bot's throughput, latency, memory and growth, side by side
with a bare aiogram echo bot, against the project's Bot API emulator over real HTTP.

    python -m tests.bench                      # the default run (~15 min on 2 cores at today's bot speed)
    python -m tests.bench --quick              # a smaller run (under 2 min, SQLite only)
    python -m tests.bench --full               # + 10,000 open dialogues and analytics at 1,000,000 leads
    python -m tests.bench --db sqlite --skip-analytics --prospects 300 --rate 200
    python -m tests.bench --profile /tmp/prof  # + a py-spy (or pyinstrument) profile of each throughput run
    python -m tests.bench --bot-cmd "python my_patched_bot.py"   # measure a variant of the bot
    python -m tests.bench --table              # print the README table of tests/bench/results.json

Phases, each on a fresh emulator, a fresh bot process and a fresh database:

1. ceiling    - `tests/bench/echo_bot.py` (aiogram's own polling, one echo handler): N prospects send as many
                messages as the dialogue has updates, each as soon as it has its echo; then the same open-loop
                latency run as the bot gets;
   floor      - `tests/bench/floor_bot.py`, the least any bot on this stack spends on the dialogue: its Bot API
                calls alone, then with one transaction an update on the bot's own engine (each database), N
                prospects through the whole dialogue at once (`--skip-floor` leaves it out);
2. throughput - the real `python -m bot`: N prospects go through the whole dialogue at once (deep-link
                /start, consent, name, contact share, email, six answers, skip, confirm, /manager);
   then the staff group's cards and notices that run queued are delivered (the outbox; reported as the
   "delivery backlog": Bot API calls, seconds and bot CPU), so the latency runs do not pay for them;
3. latency    - the same process, open loop: first at half the throughput just measured, then at R updates a
                second (default 300), D seconds each, prospects thinking at least 1 s between an answer and
                their next action; what is unanswered 10 s after the offer ends counts as lost;
4. network    - a few prospects with every Bot API call answered `--rtt-ms` later (default 30 ms, roughly a
                server in Europe talking to Telegram), because a bot that holds a lock across its API calls is
                bound by the network, which the emulator on 127.0.0.1 hides;
5. memory     - RSS of a fresh bot with 1,000 and 3,000 dialogues open (1,000 and 10,000 with --full), SQLite;
6. analytics  - the analytics engineer's benchmark (tests/bench/analytics.py or bench/analytics_bench.py) at
                10k and 100k leads (and 1M with --full).

Phases 2-4 run on SQLite and on PostgreSQL (127.0.0.1:5432: a fresh database per run, dropped afterwards;
skipped with a note when unreachable). Figures go to a JSON file (default tests/bench/results.json) and a
markdown table to stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench import harness as h
from tests.bench import profile as prof
from tests.bench.load import DIALOGUE, OPENING, Run, echo_script
from tests.bench.memory import memory_run
from tests.bench.memory import wait_idle as _wait_idle

RESULTS = Path(__file__).resolve().parent / "results.json"
WARMUP_PROSPECTS = 20
NETWORK_PROSPECTS = 20
TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0
TARGET_MEMORY_MB = 150.0


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def loadavg() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


async def wait_idle(http: aiohttp.ClientSession, base_url: str, notes: list[str] | None = None) -> bool:
    """Between phases: every update confirmed; a bot still busy after two minutes is noted, not fatal."""
    try:
        await _wait_idle(http, base_url)
        return True
    except TimeoutError as exc:
        log(f"warning: {exc}")
        if notes is not None:
            notes.append(str(exc))
        return False


async def wait_quiet(http: aiohttp.ClientSession, base_url: str, notes: list[str] | None = None,
                     quiet_s: float = 1.0, timeout: float = 180) -> dict[str, Any]:
    """After the throughput run: the bot has confirmed every update but is still delivering the staff
    group's cards and notices (the outbox, paced by Telegram's limits in production, unlimited here).
    Wait until it makes no Bot API call for `quiet_s`, so the latency runs measure their own load and not
    that backlog; how many calls and how long it took is reported as a figure of its own."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    first = last = await h.last_call_seq(http, base_url)
    changed = began
    while loop.time() - changed < quiet_s:
        if loop.time() - began > timeout:
            warning = f"the bot was still calling the Bot API {timeout:.0f} s after the run"
            log(f"warning: {warning}")
            if notes is not None:  # the latency runs that follow pay for what is left, as wait_idle notes
                notes.append(warning)
            break
        await asyncio.sleep(0.1)
        calls = await h.last_call_seq(http, base_url)
        if calls != last:
            last, changed = calls, loop.time()
    return {"bot_api_calls": last - first, "seconds": round(max(changed - began, 0.0), 2)}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cores = h.Cores.plan()
        self.work = Path(tempfile.mkdtemp(prefix="leadbot-bench-"))
        self.uid = 10_000_000  # every phase plays users of its own
        self.notes: list[str] = []
        self.spy = prof.py_spy() if args.profile else None

    def users(self, count: int) -> int:
        first = self.uid
        self.uid += count + 1000
        return first

    def bot_argv(self) -> list[str] | None:
        return shlex.split(self.args.bot_cmd) if self.args.bot_cmd else None

    @contextlib.asynccontextmanager
    async def world(self, name: str, argv: list[str] | None, db: h.Database | None, *, rtt_ms: float = 0,
                    profile_to: Path | None = None, env: dict[str, str] | None = None) -> Any:
        """A fresh emulator and a bot process polling it; yields (http, base_url, bot, emulator)."""
        emulator = h.EmulatorProcess(self.work, self.cores.harness).start()
        bot: h.Child | None = None
        try:
            base_url = await emulator.ready(rtt_ms=rtt_ms)
            connector = aiohttp.TCPConnector(limit=400)
            async with aiohttp.ClientSession(connector=connector, read_bufsize=2**20) as http:
                since = await h.last_call_seq(http, base_url)
                bot_env = h.bot_env(base_url, db.url if db else "sqlite+aiosqlite:///:memory:", **(env or {}))
                if argv is None:
                    bot = h.bot_process(self.work, self.cores.bot, bot_env, name=name, profile_to=profile_to)
                else:
                    bot = h.Child(name, argv, {**bot_env, "PYTHONPATH": str(h.ROOT)}, self.work, self.cores.bot)
                bot.start()
                await h.wait_polling(http, base_url, bot, since)
                yield http, base_url, bot, emulator
        finally:
            if bot is not None:
                code = bot.stop()
                if code not in (0, None, -15):
                    self.notes.append(f"{name}: exited with {code}: {bot.output(600)}")
            emulator.stop(timeout=10)

    # ------------------------------------------------------------------------------- phases

    async def measured(self, bot: h.Child, emulator: h.Child, coro: Any) -> dict[str, Any]:
        """Run a load phase and add what it cost the bot (CPU), the harness and the machine."""
        cpu0, emu0, self0, wall0 = bot.cpu_seconds(), emulator.cpu_seconds(), time.process_time(), time.monotonic()
        result = await coro
        wall = time.monotonic() - wall0
        cpu = bot.cpu_seconds() - cpu0
        result["bot_cpu_s"] = round(cpu, 2)
        result["bot_cpu_util"] = round(cpu / wall, 2)  # 1.0 = the bot's core was busy all along
        if result.get("updates"):
            result["bot_cpu_ms_per_update"] = round(cpu / result["updates"] * 1000, 2)
        result["emulator_cpu_util"] = round((emulator.cpu_seconds() - emu0) / wall, 2)
        result["loadgen_cpu_util"] = round((time.process_time() - self0) / wall, 2)
        result["peak_rss_mb"] = round(bot.peak_rss_mb(), 1)
        result["loadavg_after"] = loadavg()
        return result

    async def latency(self, run: Run, bot: h.Child, emulator: h.Child, script: Any, rate: float,
                      label: str) -> dict[str, Any]:
        duration = self.args.duration
        log(f"latency ({label}): {rate:.0f} updates/s offered for {duration:.0f} s")
        out = await self.measured(bot, emulator, run.open_loop(
            script, rate, duration, self.users(int(rate * duration) + 10), drain=self.args.drain))
        lat = out.get("latency_ms", {})
        log(f"latency ({label}): p50 {lat.get('p50')} p95 {lat.get('p95')} p99 {lat.get('p99')} ms, "
            f"answered {out['updates']}/{out['offered_updates']}, {out.get('updates_per_s')} updates/s")
        return out

    async def ceiling(self) -> dict[str, Any]:
        n = self.args.prospects
        log(f"ceiling: aiogram echo bot, {n} prospects x {len(DIALOGUE)} messages")
        argv = [sys.executable, "-m", "tests.bench.echo_bot"]
        async with self.world("echo", argv, None) as (http, base_url, bot, emulator):
            out: dict[str, Any] = {"idle_rss_mb": round(bot.rss_mb(), 1)}
            async with Run(http, base_url, timeout=self.args.timeout) as run:
                await run.closed_loop(echo_script(), WARMUP_PROSPECTS, self.users(WARMUP_PROSPECTS))
                out["throughput"] = await self.measured(bot, emulator, run.closed_loop(
                    echo_script(), n, self.users(n), max_seconds=self.args.max_seconds))
                log(f"ceiling: {out['throughput'].get('updates_per_s')} updates/s, "
                    f"bot CPU {out['throughput']['bot_cpu_util']}")
                await wait_idle(http, base_url, self.notes)
                out["latency"] = await self.latency(run, bot, emulator, echo_script(), self.args.rate, "echo")
            out["peak_rss_mb"] = round(bot.peak_rss_mb(), 1)
        return out

    async def floor(self, db: h.Database | None) -> dict[str, Any]:
        """The floor bot (`tests/bench/floor_bot.py`) through the whole dialogue, N prospects at once: the
        dialogue's Bot API calls alone (no database), or with one committed transaction an update."""
        n, label = self.args.prospects, f"floor-{db.kind}" if db is not None else "floor-calls"
        log(f"{label}: {n} prospects through the dialogue's calls"
            + (f" and a transaction an update ({db.kind})" if db is not None else ""))
        argv = [sys.executable, "-m", "tests.bench.floor_bot"]
        out: dict[str, Any] = {"database": db.kind if db is not None else None}
        async with self.world(label, argv, db, env={"FLOOR_DB": "1" if db is not None else "0"}) as (
                http, base_url, bot, emulator), Run(http, base_url, timeout=self.args.timeout) as run:
            out["idle_rss_mb"] = round(bot.rss_mb(), 1)
            await run.closed_loop(DIALOGUE, WARMUP_PROSPECTS, self.users(WARMUP_PROSPECTS))
            await wait_idle(http, base_url, self.notes)
            out["throughput"] = await self.measured(bot, emulator, run.closed_loop(
                DIALOGUE, n, self.users(n), max_seconds=self.args.max_seconds))
        tp = out["throughput"]
        log(f"{label}: {tp.get('updates_per_s')} updates/s, bot CPU {tp['bot_cpu_util']}, "
            f"{tp.get('bot_cpu_ms_per_update')} ms CPU/update, lost {tp['lost']}")
        return out

    async def leadbot(self, db: h.Database) -> dict[str, Any]:
        n, out = self.args.prospects, {**db.info, "database": db.kind}
        pyinstrument_to = None
        if self.args.profile and not self.spy:
            pyinstrument_to = Path(self.args.profile) / f"pyinstrument-{db.kind}.txt"
        async with self.world(f"bot-{db.kind}", self.bot_argv(), db, profile_to=pyinstrument_to) as (
                http, base_url, bot, emulator):
            out["idle_rss_mb"] = round(bot.rss_mb(), 1)
            async with Run(http, base_url, timeout=self.args.timeout) as run:
                await run.closed_loop(DIALOGUE, WARMUP_PROSPECTS, self.users(WARMUP_PROSPECTS))
                await wait_idle(http, base_url, self.notes)
                log(f"throughput ({db.kind}): {n} prospects through the whole dialogue")
                recorder = None
                if self.spy:
                    spy_out = Path(self.args.profile) / f"py-spy-{db.kind}.txt"
                    recorder = prof.Recorder(self.spy, bot.pid, spy_out)
                out["throughput"] = await self.measured(bot, emulator, run.closed_loop(
                    DIALOGUE, n, self.users(n), max_seconds=self.args.max_seconds))
                if recorder is not None:
                    problem = recorder.stop()
                    out["profile"] = {"file": str(spy_out), "problem": problem} if problem else {
                        "file": str(spy_out), **prof.summarize(spy_out)}
                    if not problem:
                        (spy_out.with_suffix(".summary.txt")).write_text(prof.render(out["profile"]) + "\n")
                tp = out["throughput"]
                log(f"throughput ({db.kind}): {tp.get('updates_per_s')} updates/s, bot CPU {tp['bot_cpu_util']}, "
                    f"{tp.get('bot_cpu_ms_per_update')} ms CPU/update, lost {tp['lost']}")
                idle = await wait_idle(http, base_url, self.notes)
                backlog = out["delivery_backlog"] = await self.measured(bot, emulator, wait_quiet(http, base_url, self.notes))
                log(f"delivery backlog ({db.kind}): {backlog['bot_api_calls']} Bot API calls in "
                    f"{backlog['seconds']} s after the run, bot CPU {backlog['bot_cpu_s']} s")
                capacity = tp.get("updates_per_s") or 0
                if idle and capacity:
                    # a load the bot can carry: latency without queueing
                    out["latency_half_capacity"] = await self.latency(
                        run, bot, emulator, DIALOGUE, max(1.0, round(capacity / 2)), f"{db.kind}, half capacity")
                    idle = await wait_idle(http, base_url, self.notes)
                if idle:  # the rate of the aim, even when it is more than the bot can carry (it comes last)
                    out["latency"] = await self.latency(run, bot, emulator, DIALOGUE, self.args.rate, db.kind)
            out["peak_rss_mb"] = round(bot.peak_rss_mb(), 1)
        if pyinstrument_to is not None:
            out["profile"] = {"file": str(pyinstrument_to)}
        return out

    async def network(self, db: h.Database) -> dict[str, Any]:
        """A handful of prospects with every Bot API call delayed by the round trip to Telegram."""
        rtt, n = self.args.rtt_ms, NETWORK_PROSPECTS
        log(f"network ({db.kind}): {n} prospects, every Bot API call answered {rtt:.0f} ms later")
        async with self.world(f"bot-{db.kind}-rtt", self.bot_argv(), db, rtt_ms=rtt) as (
                http, base_url, bot, emulator), Run(http, base_url, timeout=self.args.timeout) as run:
            await run.closed_loop(DIALOGUE, 2, self.users(2))
            out = await self.measured(bot, emulator, run.closed_loop(DIALOGUE, n, self.users(n)))
        out["rtt_ms"] = rtt
        log(f"network ({db.kind}): {out.get('updates_per_s')} updates/s, bot CPU {out['bot_cpu_util']}")
        return out

    async def echo_network(self) -> dict[str, Any]:
        rtt, n = self.args.rtt_ms, NETWORK_PROSPECTS
        argv = [sys.executable, "-m", "tests.bench.echo_bot"]
        async with self.world("echo-rtt", argv, None, rtt_ms=rtt) as (http, base_url, bot, emulator), \
                Run(http, base_url, timeout=self.args.timeout) as run:
            await run.closed_loop(echo_script(), 2, self.users(2))
            out = await self.measured(bot, emulator, run.closed_loop(echo_script(), n, self.users(n)))
        out["rtt_ms"] = rtt
        log(f"network (echo): {out.get('updates_per_s')} updates/s")
        return out

    async def on(self, kind: str, fn: Any) -> dict[str, Any]:
        if kind == "sqlite":
            return await fn(h.sqlite_database(self.work, f"bench-{self.uid}"))
        why = await h.postgres_available()
        if why is not None:
            log(f"PostgreSQL skipped: {why}")
            return {"skipped": why}
        async with h.postgres_database(str(os.getpid())) as db:
            try:
                return await fn(db)
            except Exception as exc:  # noqa: BLE001 - one database failing must not lose the others' figures
                log(f"PostgreSQL run failed: {type(exc).__name__}: {exc}")
                return {"failed": f"{type(exc).__name__}: {str(exc)[:2000]}"}

    async def memory(self) -> dict[str, Any]:
        levels = self.args.memory_levels
        log(f"memory: dialogues open at {levels} ({len(OPENING)} updates each)")
        db = h.sqlite_database(self.work, "memory")
        async with self.world("bot-memory", self.bot_argv(), db) as (http, base_url, bot, _emulator):
            out = await memory_run(http, base_url, bot, db, levels, self.users(max(levels)),
                                   concurrency=self.args.memory_concurrency, timeout=self.args.timeout)
        out["echo_idle_rss_mb"] = None
        log(f"memory: idle {out['idle_rss_mb']} MB, " + ", ".join(
            f"{k}: {v['rss_mb']} MB" for k, v in out["levels"].items()))
        return out

    def analytics(self) -> dict[str, Any]:
        script = analytics_script()
        if script is None:
            return {"skipped": "no analytics benchmark found (tests/bench/analytics.py or bench/analytics_bench.py)"}
        sizes = [10_000] if self.args.quick else [10_000, 100_000]
        if self.args.full:
            sizes.append(1_000_000)
        out: dict[str, Any] = {"script": script}
        for leads in sizes:
            log(f"analytics: {leads:,} leads ({script})")
            began = time.monotonic()
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", script, "--leads", str(leads)], cwd=h.ROOT, capture_output=True, check=False,
                    text=True, timeout=3600, env={**os.environ, "PYTHONPATH": str(h.ROOT)})
            except subprocess.TimeoutExpired:
                out[str(leads)] = {"failed": "timed out after an hour"}
                continue
            lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
            if proc.returncode != 0 or not lines:
                out[str(leads)] = {"failed": (proc.stderr or proc.stdout)[-2000:]}
                log(f"analytics: {leads:,} leads failed")
                continue
            figures = json.loads(lines[-1])
            figures["wall_s"] = round(time.monotonic() - began, 1)
            out[str(leads)] = figures
        return out

    async def run(self) -> dict[str, Any]:
        a = self.args
        self.cores.pin_self()
        if a.profile:
            Path(a.profile).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        results: dict[str, Any] = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "python -m tests.bench " + " ".join(sys.argv[1:]),
            "machine": h.machine_info(),
            "setup": {
                "layout": self.cores.describe() + "; three processes: the bot under test, the emulator "
                          "(python -m bot.emulator), this load generator; all HTTP over 127.0.0.1",
                "emulator_limits": "Telegram's rate limits off (/control/limits)",
                "bot_env": "LOG_LEVEL=INFO, DIGEST=off, outbox pacing raised so staff cards are posted within the run",
                "bot_cmd": a.bot_cmd or "python -m bot",
                "prospects": a.prospects, "updates_per_prospect": len(DIALOGUE), "max_seconds": a.max_seconds,
                "warmup_prospects": WARMUP_PROSPECTS, "rate": a.rate, "duration_s": a.duration,
                "drain_s": a.drain, "rtt_ms": a.rtt_ms, "memory_levels": list(a.memory_levels),
                "latency_definition": "emulator ts of the bot's answer minus emulator ts of the update; "
                                      "unanswered updates count as infinitely late",
                "loadavg_before": loadavg(),
            },
        }
        results["ceiling"] = await self.ceiling()
        dbs = ["sqlite", "postgres"] if a.db == "both" else [a.db]
        if not a.skip_floor:
            results["floor"] = {"calls": await self.floor(None)}
            for kind in dbs:
                results["floor"][kind] = await self.on(kind, self.floor)
        for kind in dbs if not a.skip_bot else ():
            results[kind] = await self.on(kind, self.leadbot)
        if a.rtt_ms and not a.skip_bot:
            results["network"] = {"echo": await self.echo_network()}
            for kind in dbs:
                results["network"][kind] = await self.on(kind, self.network)
        if not a.skip_memory:
            results["memory"] = await self.memory()
        if not a.skip_analytics:
            results["analytics"] = await asyncio.to_thread(self.analytics)
        results["summary"] = summary(results)
        results["notes"] = self.notes
        results["setup"]["loadavg_after"] = loadavg()
        results["setup"]["total_s"] = round(time.monotonic() - started)
        shutil.rmtree(self.work, ignore_errors=True)
        return results


def analytics_script() -> str | None:
    for module, path in (("tests.bench.analytics", "tests/bench/analytics.py"),
                         ("bench.analytics_bench", "bench/analytics_bench.py")):
        if (h.ROOT / path).exists():
            return module
    return None


# ----------------------------------------------------------------------------------------- figures


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def summary(results: dict[str, Any]) -> dict[str, Any]:
    ceiling = _get(results, "ceiling", "throughput", "updates_per_s")
    echo_cpu = _get(results, "ceiling", "throughput", "bot_cpu_ms_per_update")
    out: dict[str, Any] = {"echo_updates_per_s": ceiling, "echo_cpu_ms_per_update": echo_cpu,
                           "aims": {"ratio_to_echo": TARGET_RATIO, "p99_ms_at_rate": TARGET_P99_MS,
                                    "rss_mb_at_10000_dialogues": TARGET_MEMORY_MB}}
    for kind in ("sqlite", "postgres"):
        data = results.get(kind)
        if not isinstance(data, dict) or "throughput" not in data:
            continue
        ups = _get(data, "throughput", "updates_per_s")
        cpu = _get(data, "throughput", "bot_cpu_ms_per_update")
        p99 = _get(data, "latency", "latency_ms", "p99")
        out[kind] = {
            "updates_per_s": ups,
            "ratio_to_echo": round(ups / ceiling, 3) if ups and ceiling else None,
            "cpu_ms_per_update": cpu,
            "cpu_ratio_to_echo": round(cpu / echo_cpu, 1) if cpu and echo_cpu else None,
            "updates_per_core_second": round(1000 / cpu) if cpu else None,
            "p99_ms_at_rate": p99,
            "p99_ms_at_half_capacity": _get(data, "latency_half_capacity", "latency_ms", "p99"),
            "meets_ratio": bool(ups and ceiling and ups / ceiling >= TARGET_RATIO),
            "meets_p99": p99 is not None and p99 < TARGET_P99_MS,
            "updates_per_s_with_rtt": _get(results, "network", kind, "updates_per_s"),
        }
    for key, data in (results.get("floor") or {}).items():
        if isinstance(data, dict) and "throughput" in data:
            ups = _get(data, "throughput", "updates_per_s")
            out.setdefault("floor", {})[key] = {
                "updates_per_s": ups, "ratio_to_echo": round(ups / ceiling, 3) if ups and ceiling else None,
                "cpu_ms_per_update": _get(data, "throughput", "bot_cpu_ms_per_update")}
    levels = _get(results, "memory", "levels") or {}
    if levels:
        top = max(levels, key=int)
        out["memory"] = {"dialogues": int(top), "rss_mb": levels[top]["rss_mb"],
                         "mb_per_1000_dialogues": _get(results, "memory", "mb_per_1000_dialogues")}
        slope = out["memory"]["mb_per_1000_dialogues"]
        if int(top) < 10_000 and slope is not None:
            out["memory"]["projected_rss_mb_at_10000"] = round(levels[top]["rss_mb"] + slope * (10_000 - int(top)) / 1000, 1)
        at10k = levels.get("10000", {}).get("rss_mb") or out["memory"].get("projected_rss_mb_at_10000")
        out["memory"]["meets_aim"] = at10k is not None and at10k < TARGET_MEMORY_MB
    return out


def table(results: dict[str, Any]) -> str:
    """The README's tables."""
    def cell(value: Any, fmt: str = "{}") -> str:
        return "–" if value is None else fmt.format(value)

    m = results.get("machine", {})
    setup = results.get("setup", {})
    pg_version = _get(results, "postgres", "server_version")
    machine = (f"Measured {str(results.get('generated_at', '?'))[:10]} on {m.get('cpu')} ({m.get('cores')} cores, "
               f"{m.get('memory_gb')} GB), Python {m.get('python')}, aiogram {m.get('aiogram')}, "
               f"SQLAlchemy {m.get('sqlalchemy')}, SQLite {m.get('sqlite')}"
               + (f", PostgreSQL {pg_version}" if pg_version else "") + f"; `{results.get('command')}`.")
    load = (f"{setup.get('prospects')} prospects x {setup.get('updates_per_prospect')} updates at once; "
            f"latency at {setup.get('rate'):.0f} updates/s offered for {setup.get('duration_s'):.0f} s; "
            f"{setup.get('layout')}.")
    rows = [
        machine,
        load,
        "",
        "| | aiogram echo (ceiling) | leadbot, SQLite | leadbot, PostgreSQL |",
        "|---|---|---|---|",
    ]
    echo = results.get("ceiling", {})
    dbs = [results.get("sqlite") or {}, results.get("postgres") or {}]
    s = results.get("summary", {})

    def row(title: str, echo_value: str, fn: Any) -> None:
        cells = []
        for data in dbs:
            if "throughput" not in data:
                cells.append("skipped" if data.get("skipped") else "failed" if data.get("failed") else "–")
            else:
                cells.append(fn(data))
        rows.append(f"| {title} | {echo_value} | " + " | ".join(cells) + " |")

    def lat(data: dict[str, Any], key: str) -> str:
        block = data.get(key) or {}
        if not block:
            return "–"
        values = " / ".join(cell(_get(block, "latency_ms", k)) for k in ("p50", "p95", "p99"))
        if block.get("lost"):
            values += f" ({block['lost']} of {block.get('offered_updates', '?')} unanswered)"
        return values

    row("updates/s, all prospects at once", cell(_get(echo, "throughput", "updates_per_s")),
        lambda d: cell(_get(d, "throughput", "updates_per_s")))
    row("dialogues (or echo runs) completed", cell(_get(echo, "throughput", "completed_prospects")),
        lambda d: f"{cell(_get(d, 'throughput', 'completed_prospects'))} of {cell(_get(d, 'throughput', 'prospects'))}"
        + (f" (stopped after {_get(d, 'throughput', 'stopped_after_s'):.0f} s)"
           if _get(d, "throughput", "stopped_after_s") else ""))
    row("ratio to the echo bot", "1.00", lambda d: cell(_get(s, d.get("database", ""), "ratio_to_echo"), "{:.2f}"))
    row("bot CPU per update, ms", cell(_get(echo, "throughput", "bot_cpu_ms_per_update")),
        lambda d: cell(_get(d, "throughput", "bot_cpu_ms_per_update")))
    row("bot's core busy during that run", cell(_get(echo, "throughput", "bot_cpu_util"), "{:.0%}"),
        lambda d: cell(_get(d, "throughput", "bot_cpu_util"), "{:.0%}"))
    row("latency p50 / p95 / p99, all at once, ms", lat(echo, "throughput"), lambda d: lat(d, "throughput"))
    row("latency p50 / p95 / p99 at half that throughput, ms", "–", lambda d: lat(d, "latency_half_capacity")
        + (f" at {_get(d, 'latency_half_capacity', 'offered_rate'):.0f}/s"
           if _get(d, "latency_half_capacity", "offered_rate") else ""))
    row(f"latency p50 / p95 / p99 at {setup.get('rate'):.0f} updates/s offered, ms", lat(echo, "latency"),
        lambda d: lat(d, "latency"))
    net = results.get("network") or {}
    if net:
        rows.append(f"| updates/s with {setup.get('rtt_ms'):.0f} ms to Telegram, {NETWORK_PROSPECTS} prospects | "
                    f"{cell(_get(net, 'echo', 'updates_per_s'))} | "
                    + " | ".join(cell(_get(net, k, "updates_per_s")) for k in ("sqlite", "postgres")) + " |")
    row("RSS idle / peak, MB", f"{cell(echo.get('idle_rss_mb'))} / {cell(echo.get('peak_rss_mb'))}",
        lambda d: f"{cell(d.get('idle_rss_mb'))} / {cell(d.get('peak_rss_mb'))}")
    rows += floor_table(results)
    mem = results.get("memory") or {}
    if mem.get("levels"):
        rows += ["", "| open dialogues (SQLite) | 0 (idle) | " + " | ".join(f"{int(k):,}" for k in mem["levels"]) + " |",
                 "|---|---|" + "---|" * len(mem["levels"]),
                 f"| bot RSS, MB | {mem.get('idle_rss_mb')} | "
                 + " | ".join(str(v["rss_mb"]) for v in mem["levels"].values()) + " |"]
        if _get(s, "memory", "projected_rss_mb_at_10000"):
            rows.append(f"\nProjected at 10,000 open dialogues: {s['memory']['projected_rss_mb_at_10000']} MB "
                        f"({mem.get('mb_per_1000_dialogues')} MB per 1,000).")
    analytics = results.get("analytics") or {}
    sizes = [k for k in analytics if k.isdigit() and "failed" not in analytics[k]]
    if sizes:
        keys = [k for k in ("generate_s", "summary_rebuild_s", "stats_30d_ms", "stats_2026-09_ms", "stats_all_ms",
                            "sources_30d_ms", "sources_all_ms", "managers_30d_ms", "dropoff_30d_ms", "export_30d_ms")
                if any(k in analytics[size] for size in sizes)]
        rows += ["", "| leads | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for size in sizes:
            rows.append(f"| {int(size):,} | " + " | ".join(cell(analytics[size].get(k)) for k in keys) + " |")
    return "\n".join(rows)


def floor_table(results: dict[str, Any]) -> list[str]:
    """What an update costs from the echo bot up: the floor bot with the dialogue's calls alone, then with a
    transaction an update, then the bot itself (the throughput runs)."""
    floor = (results.get("summary") or {}).get("floor") or {}
    if not floor:
        return []
    s = results["summary"]
    columns = [("aiogram echo", {"updates_per_s": s.get("echo_updates_per_s"), "ratio_to_echo": 1.0,
                                 "cpu_ms_per_update": s.get("echo_cpu_ms_per_update")}),
               ("floor: the dialogue's calls", floor.get("calls"))]
    for kind, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        if floor.get(kind):
            columns.append((f"floor: + a transaction, {name}", floor[kind]))
    for kind, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        if s.get(kind):
            columns.append((f"leadbot, {name}", s[kind]))

    def cells(key: str, fmt: str) -> str:
        return " | ".join("–" if not data or data.get(key) is None else fmt.format(data[key]) for _, data in columns)

    return ["", "| | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns),
            f"| updates/s, all prospects at once | {cells('updates_per_s', '{}')} |",
            f"| ratio to the echo bot | {cells('ratio_to_echo', '{:.2f}')} |",
            f"| bot CPU per update, ms | {cells('cpu_ms_per_update', '{}')} |"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 2 minutes, SQLite only)")
    parser.add_argument("--full", action="store_true", help="10,000 open dialogues and analytics at 1M leads too")
    parser.add_argument("--prospects", type=int, help="prospects at once in the throughput runs (default 500)")
    parser.add_argument("--rate", type=float, help="updates a second offered in the latency run (default 300)")
    parser.add_argument("--duration", type=float, help="seconds of each latency run (default 10)")
    parser.add_argument("--max-seconds", type=float,
                        help="a throughput run stops starting new actions after this long (default 90; 20 with "
                             "--quick): a slow bot is measured on the part it did")
    parser.add_argument("--drain", type=float,
                        help="seconds to wait for the last answers after a latency run (default 10; 5 with --quick)")
    parser.add_argument("--rtt-ms", type=float, help="network round trip to Telegram in the network run "
                                                     "(default 30; 0 skips that run)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), help="default both (sqlite with --quick)")
    parser.add_argument("--memory-levels", help="open dialogues to measure, e.g. 1000,10000")
    parser.add_argument("--memory-concurrency", type=int, default=10,
                        help="prospects opening dialogues at a time in the memory run")
    parser.add_argument("--skip-analytics", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="no floor bot runs (tests/bench/floor_bot.py)")
    parser.add_argument("--skip-bot", action="store_true",
                        help="no runs of the bot itself (the echo and floor bots alone, with --skip-memory)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a prospect waits for an answer")
    parser.add_argument("--profile", metavar="DIR", help="profile each throughput run (py-spy, else pyinstrument)")
    parser.add_argument("--bot-cmd", help="run this instead of `python -m bot` (to measure a variant)")
    parser.add_argument("--out", type=Path, help=f"where the JSON goes (default {RESULTS.relative_to(h.ROOT)}; "
                                                 "--quick runs go to the temp directory)")
    parser.add_argument("--table", action="store_true", help="print the README table of --out and exit")
    args = parser.parse_args(argv)
    if args.prospects is None:
        args.prospects = 30 if args.quick else 500
    if args.max_seconds is None:
        args.max_seconds = 20.0 if args.quick else 90.0
    if args.rate is None:
        args.rate = 300.0
    if args.duration is None:
        args.duration = 5.0 if args.quick else 10.0
    if args.drain is None:
        args.drain = 5.0 if args.quick else 10.0
    if args.rtt_ms is None:
        args.rtt_ms = 0.0 if args.quick else 30.0
    if args.db is None:
        args.db = "sqlite" if args.quick else "both"
    if args.memory_levels:
        args.memory_levels = tuple(sorted(int(x) for x in args.memory_levels.split(",")))
    else:
        args.memory_levels = (200,) if args.quick else (1000, 10_000) if args.full else (1000, 3000)
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "leadbot-bench-quick.json" if args.quick else RESULTS
    if args.bot_cmd:
        parts = shlex.split(args.bot_cmd)
        if parts and parts[0] == "python":
            parts[0] = sys.executable
        args.bot_cmd = shlex.join(parts)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(table(json.loads((args.out if args.out.exists() else RESULTS).read_text())))
        return
    results = asyncio.run(Bench(args).run())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table(results))
    print(f"\nfigures: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
