"""Processes and places of a benchmark run: the emulator, the bot under test, the databases, the machine.

Layout on a machine with two or more cores: the bot under test is pinned to one core of its own; the
emulator (a separate `python -m bot.emulator` process) and the load generator (this process) share another.
So the bot is measured "on one core", and the load generator never steals its CPU budget.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:" + "B" * 35
STAFF_CHAT = -1009001
ADMIN = 900
MANAGERS = (701, 702)
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


# ----------------------------------------------------------------------------------------- cores


@dataclass(frozen=True)
class Cores:
    bot: set[int] | None  # the bot under test (and the echo bot)
    harness: set[int] | None  # the emulator and the load generator

    @classmethod
    def plan(cls) -> Cores:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return cls(None, None)
        if len(cpus) < 2:
            return cls(None, None)
        return cls({cpus[0]}, {cpus[1]})

    def describe(self) -> str:
        if self.bot is None:
            return "not pinned (fewer than 2 cores or no sched_setaffinity)"
        return f"bot on CPU {sorted(self.bot)}, emulator + load generator on CPU {sorted(self.harness or ())}"

    def pin_self(self) -> None:
        if self.harness is not None:
            os.sched_setaffinity(0, self.harness)


# ----------------------------------------------------------------------------------------- processes


class Child:
    """A child process pinned to `cpus`, with its CPU time and resident memory at hand."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path,
                 cpus: set[int] | None, stdout: int | None = None) -> None:
        self.name, self.argv, self.env, self.workdir, self.cpus = name, argv, env, workdir, cpus
        self.log_path = workdir / f"{name}.log"
        self._stdout = stdout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    def start(self) -> Child:
        cpus = self.cpus

        def pin() -> None:  # runs in the child before exec: every thread it starts stays on these cores
            if cpus:
                os.sched_setaffinity(0, cpus)

        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "PYTHONUNBUFFERED": "1", **self.env}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, env=env, preexec_fn=pin,  # noqa: PLW1509
            stdout=self._stdout if self._stdout is not None else self._log,
            stderr=self._log,
        )
        self.ps = psutil.Process(self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        assert self.ps is not None
        return self.ps.memory_info().rss / 2**20

    def peak_rss_mb(self) -> float:
        """The high-water mark of the resident set (VmHWM) - exact, no sampling needed."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return self.rss_mb()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (the bot finishes what is in flight and exits), SIGKILL if it does not."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._log.close()
        return self.proc.returncode

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class EmulatorProcess(Child):
    """`python -m bot.emulator` on a free port, with Telegram's rate limits switched off."""

    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        argv = [sys.executable, "-m", "bot.emulator", "--host", "127.0.0.1", "--port", "0"]
        super().__init__("emulator", argv, {}, workdir, cpus, stdout=subprocess.PIPE)
        self.base_url = ""

    async def ready(self, timeout: float = 60, rtt_ms: float = 0) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        self.base_url = line.decode().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError(f"the emulator did not start:\n{self.output()}")
        async with aiohttp.ClientSession() as http:
            # a campaign's throughput is the bot's business here, not Telegram's flood limits
            await _post(http, f"{self.base_url}/control/limits",
                        {"group_per_minute": None, "private_per_second": None, "global_per_second": None})
            await _post(http, f"{self.base_url}/control/chats", {"id": STAFF_CHAT, "type": "supergroup",
                                                                 "title": "Staff"})
            for manager in MANAGERS:
                await _post(http, f"{self.base_url}/control/members",
                            {"chat_id": STAFF_CHAT, "user_id": manager, "status": "member"})
            if rtt_ms:  # every Bot API call answered `rtt_ms` later, as over a real network
                await _post(http, f"{self.base_url}/control/faults",
                            {"rules": [{"method": None, "count": 0, "delay": rtt_ms / 1000}]})
        return self.base_url


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body) as resp:
        payload = await resp.json(content_type=None)
        if resp.status >= 400:
            raise RuntimeError(f"{url}: {resp.status} {payload}")
        return payload


def bot_env(base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": base_url,
        "DATABASE_URL": database_url,
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "ADMIN_IDS": str(ADMIN),
        "MANAGER_IDS": ",".join(map(str, MANAGERS)),
        "POLLING_TIMEOUT": "10",
        "DIGEST": "off",
        "LOG_LEVEL": "INFO",  # the production default: its cost is part of the figures
        # the staff chat's pace (20 posts a minute) would leave the cards for after the run; raised so that
        # posting every card and manager notice is part of the measured work
        "OUTBOX_GROUP_PER_MINUTE": "1000000",
        "OUTBOX_CHAT_PER_SECOND": "100000",
        "OUTBOX_GLOBAL_PER_SECOND": "100000",
    }
    env.update(extra)
    return env


def bot_process(workdir: Path, cpus: set[int] | None, env: dict[str, str], *, name: str = "bot",
                profile_to: Path | None = None) -> Child:
    if profile_to is not None:
        argv = [sys.executable, "-m", "pyinstrument", "--no-color", "-r", "text", "--show-all",
                "-o", str(profile_to), "-m", "bot"]
    else:
        argv = [sys.executable, "-m", "bot"]
    return Child(name, argv, {**env, "PYTHONPATH": str(ROOT)}, workdir, cpus)


async def wait_polling(http: aiohttp.ClientSession, base_url: str, child: Child, since: int,
                       timeout: float = 90) -> None:
    """The bot (or the echo bot) is up once it long-polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with http.get(f"{base_url}/control/calls", params={"since": str(since), "method": "getUpdates"}) as r:
            if (await r.json())["calls"]:
                return
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode if child.proc else '?'}:\n"
                               f"{child.output()}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not start polling:\n{child.output()}")


async def last_call_seq(http: aiohttp.ClientSession, base_url: str) -> int:
    async with http.get(f"{base_url}/control/state") as r:
        return int((await r.json())["calls"])


# ----------------------------------------------------------------------------------------- databases


@dataclass
class Database:
    kind: str  # sqlite | postgres
    url: str
    drop: Any = None
    info: dict[str, Any] = field(default_factory=dict)


def sqlite_database(workdir: Path, name: str) -> Database:
    path = workdir / f"{name}.db"
    return Database("sqlite", f"sqlite+aiosqlite:///{path}", info={"file": str(path)})


async def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL unreachable at {PG_ADMIN_URL.rsplit('@', 1)[-1]}: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


@contextlib.asynccontextmanager
async def postgres_database(name_hint: str) -> AsyncIterator[Database]:
    """A fresh database created from the admin connection, dropped afterwards."""
    import asyncpg

    name = f"leadbot_bench_{name_hint}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        version = await admin.fetchval("SHOW server_version")
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield Database("postgres", f"{base}/{name}", info={"database_name": name, "server_version": version})
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ----------------------------------------------------------------------------------------- the machine


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    freq = None
    with contextlib.suppress(Exception):
        current = psutil.cpu_freq()
        freq = round(current.max or current.current) if current else None
    return {
        "cpu": cpu,
        "cpu_mhz": freq,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aiogram": _version("aiogram"),
        "sqlalchemy": _version("SQLAlchemy"),
        "aiosqlite": _version("aiosqlite"),
        "asyncpg": _version("asyncpg"),
        "aiohttp": _version("aiohttp"),
        "pydantic": _version("pydantic"),
        "sqlite": sqlite3.sqlite_version,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
