"""Shared fixtures: the Bot API emulator, an in-process app driven by the real poller, and the real
`python -m bot` process for end-to-end tests."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

TOKEN = "123456:" + "A" * 35
STAFF_CHAT = -1001234
ADMIN = 900
MANAGERS = (701, 702)
ROOT = Path(__file__).resolve().parent.parent


def user(uid: int = 1001, first_name: str = "Alice", language_code: str = "en", username: str | None = None
         ) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": first_name, "language_code": language_code,
            "username": username or f"user{uid}"}


@pytest.fixture
async def emulator() -> AsyncIterator[Any]:
    from bot.emulator import run_emulator

    async with run_emulator() as emu:
        yield emu


@pytest.fixture
async def client(emulator) -> AsyncIterator[Any]:
    from bot.emulator.client import EmulatorClient

    async with EmulatorClient(emulator.base_url) as c:
        await c.create_chat(STAFF_CHAT, type="supergroup", title="Staff")
        for manager in MANAGERS:
            await c.set_member(STAFF_CHAT, manager, "member")
        yield c


def settings_env(tmp_path: Path, base_url: str, **extra: Any) -> dict[str, str]:
    env = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/leadbot.db",
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "ADMIN_IDS": str(ADMIN),
        "MANAGER_IDS": ",".join(map(str, MANAGERS)),
        "POLLING_TIMEOUT": "1",
        "DIGEST": "off",
        "LOG_LEVEL": "INFO",
    }
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def make_settings(tmp_path, emulator):
    from bot.settings import Settings

    def make(**extra: Any) -> Settings:
        env = settings_env(tmp_path, emulator.base_url, **extra)
        return Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})

    return make


class RunningApp:
    """The whole app in this event loop, fed by the real poller from the emulator."""

    def __init__(self, app: Any, emulator: Any) -> None:
        self.app = app
        self.emulator = emulator
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from bot.polling import Poller

        self.poller = Poller(self.app.bot, self.app.dp, timeout=1)
        self.task = asyncio.create_task(self.poller.run())

    async def stop(self) -> None:
        self.poller.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        await self.app.close()

    async def idle(self, timeout: float = 10) -> None:
        """Every update the emulator holds is handled and confirmed, and the outbox is sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.emulator.pending_count() == 0 and not self.poller.inflight:
                if self.app.delivery is not None:
                    await self.app.delivery.flush(timeout=max(0.1, deadline - loop.time()))
                if self.emulator.pending_count() == 0 and not self.poller.inflight:
                    return
            await asyncio.sleep(0.01)
        raise TimeoutError("the bot did not go idle")

    def session(self):
        return self.app.session_factory()


@pytest.fixture
async def running_app(make_settings, emulator, client) -> AsyncIterator[RunningApp]:
    from bot.app import create_app

    app = await create_app(make_settings())
    running = RunningApp(app, emulator)
    await running.start()
    yield running
    await running.stop()


class BotProcess:
    """The real `python -m bot` as a child process."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env, self.cwd, self.log = env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        env.pop("PYTEST_CURRENT_TEST", None)
        self.out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.cwd, env=env, stdout=self.out,
                                     stderr=subprocess.STDOUT)

    async def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int:
        """Signal the process and wait for it without blocking the event loop (the emulator lives
        in this loop and the bot talks to it while it shuts down)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.proc.poll() is None:
            if loop.time() > deadline:
                self.proc.kill()
                raise AssertionError(f"the bot did not exit within {timeout}s after signal {sig}")
            await asyncio.sleep(0.02)
        self.out.close()
        return self.proc.returncode

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            await self.kill(signal.SIGTERM)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def bot_process(tmp_path, emulator):
    processes: list[BotProcess] = []

    def make(**extra: Any) -> BotProcess:
        process = BotProcess(settings_env(tmp_path, emulator.base_url, **extra), tmp_path, tmp_path / "bot.log")
        processes.append(process)
        process.start()
        return process

    yield make
    for process in processes:
        await process.stop()
