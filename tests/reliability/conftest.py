"""Helpers for the reliability tests: people who talk to the bot through the in-process emulator, the
real `python -m bot` process stopped without blocking the event loop (the emulator runs in it), the
database read from the test process, and the measured figures printed at the end of the run."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from tests.conftest import MANAGERS, STAFF_CHAT, BotProcess, settings_env, user

FIGURES: list[tuple[str, dict[str, Any]]] = []


def figure(name: str, **values: Any) -> None:
    """Record what a test measured (printed in the terminal summary as `reliability figures`)."""
    FIGURES.append((name, values))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, values in FIGURES:
        terminalreporter.write_line(f"{name}: {json.dumps(values, ensure_ascii=False, default=str)}")


# ------------------------------------------------------------------------------------------ waiting


async def wait_until(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------------------ people


def is_bot(message: dict[str, Any]) -> bool:
    return bool(message.get("from", {}).get("is_bot"))


def labels(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    return [button["text"] for row in rows for button in row]


def shows(message: dict[str, Any], fragment: str) -> bool:
    return fragment in (message.get("text") or message.get("caption") or "") or any(
        fragment in label for label in labels(message))


class Person:
    """A prospect (or a manager in the staff chat) acting through the in-process emulator. Every action
    can wait for a NEW bot message in the chat that shows `then` (in its text or on a button). The bot's
    messages are followed through the emulator's event log (cheap: only new events are read)."""

    def __init__(self, emulator: Any, who: dict[str, Any], chat_id: int | None = None) -> None:
        self.emulator, self.user, self.id = emulator, who, who["id"]
        self.chat = chat_id if chat_id is not None else who["id"]
        self.seen = emulator.bus.seq
        self.known: dict[int, dict[str, Any]] = {m["message_id"]: m for m in self.bot_messages()}

    def bot_messages(self, chat: int | None = None) -> list[dict[str, Any]]:
        return [m for m in self.emulator.messages(self.chat if chat is None else chat) if is_bot(m)]

    def _follow(self) -> None:
        fresh = []
        for event in reversed(self.emulator.bus.history):
            if event["seq"] <= self.seen:
                break
            fresh.append(event)
        for event in reversed(fresh):
            if event["type"] in ("message", "edit") and event["chat_id"] == self.chat and event["from_bot"]:
                self.known[event["message"]["message_id"]] = event["message"]
        self.seen = max(self.seen, fresh[0]["seq"]) if fresh else self.seen

    def last_id(self) -> int:
        self._follow()
        return max(self.known, default=0)

    async def expect(self, fragment: str, after: int, timeout: float = 20) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self._follow()
            return next((m for i, m in sorted(self.known.items()) if i > after and shows(m, fragment)), None)

        return await wait_until(found, timeout, f"user {self.id}: a bot message showing {fragment!r}")

    async def _then(self, before: int, then: str | None, timeout: float) -> dict[str, Any] | None:
        return await self.expect(then, before, timeout) if then else None

    async def say(self, text: str, then: str | None = None, timeout: float = 20, **kw: Any) -> dict[str, Any] | None:
        before = self.last_id()
        self.sent = self.emulator.inject_message(self.user, text, chat_id=None if self.chat == self.id else self.chat,
                                                 **kw)
        return await self._then(before, then, timeout)

    async def send(self, then: str | None = None, timeout: float = 20, **kind: Any) -> dict[str, Any] | None:
        before = self.last_id()
        self.sent = self.emulator.inject_message(self.user, **kind)
        return await self._then(before, then, timeout)

    async def contact(self, phone: str, then: str | None = None, timeout: float = 20) -> dict[str, Any] | None:
        contact = {"phone_number": phone, "first_name": self.user["first_name"], "user_id": self.id}
        return await self.send(then, timeout, contact=contact)

    async def press(self, label: str, then: str | None = None, timeout: float = 20) -> dict[str, Any] | None:
        before = self.last_id()
        self.pressed = self.emulator.press(self.user, self.chat, label)
        return await self._then(before, then, timeout)

    async def answer_of(self, pressed: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        return await wait_until(lambda: self.emulator.callback_answer(pressed["callback_query_id"]), timeout,
                                "the callback answer")


# the shortest answers that qualify a lead with the default funnel (score 65+ >= threshold 50)
QUALIFYING = ("A custom project", "Over $20,000", "As soon as possible", "Private person")


async def to_name_step(person: Person, source: str | None = None, timeout: float = 20) -> None:
    await person.say(f"/start {source}" if source else "/start", then="I agree", timeout=timeout)
    await person.press("I agree", then="What's your name?", timeout=timeout)


async def qualify(person: Person, name: str, phone: str, email: str, *, source: str | None = None,
                  timeout: float = 30) -> None:
    """The whole dialogue of a prospect who qualifies (their card is posted after Confirm)."""
    await to_name_step(person, source, timeout)
    await person.say(name, then="Please share your phone number", timeout=timeout)
    await finish_dialogue(person, phone, email, timeout=timeout)


async def finish_dialogue(person: Person, phone: str, email: str, *, timeout: float = 30) -> None:
    """From the phone step to Confirm, with answers that qualify."""
    await person.contact(phone, then="Your email", timeout=timeout)
    await person.say(email, then=QUALIFYING[0], timeout=timeout)
    following = [*QUALIFYING[1:], "Anything else we should know?"]
    for label, then in zip(QUALIFYING, following, strict=True):
        await person.press(label, then=then, timeout=timeout)
    await person.press("Skip", then="Please check your answers", timeout=timeout)
    await person.press("Confirm", then="Thank you", timeout=timeout)


def people(emulator: Any, count: int, first: int = 3001) -> list[tuple[Person, str, str, str]]:
    """`count` prospects with distinct names, phones and e-mails (which must never reach the logs)."""
    out = []
    for i in range(count):
        name = f"Zelda Quixote{chr(65 + i % 26)}{i}"
        who = user(first + i, f"Zelda{i}", "en", username=f"zq_{first + i}")
        out.append((Person(emulator, who), name, f"+3806712{first + i:05d}", f"zelda.q{first + i}@example.org"))
    return out


# ------------------------------------------------------------------------------------------ database


class Db:
    """The bot's SQLite database, read (and written, for fault injection) from the test process."""

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        self.engine = create_engine(self.url, connect_args={"timeout": 30})

    def rows(self, model: Any, *where: Any, order: Any = None) -> list[Any]:
        with Session(self.engine) as session:
            query = select(model).where(*where)
            if order is not None:
                query = query.order_by(order)
            return list(session.scalars(query).all())

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    database = Db(tmp_path / "leadbot.db")
    yield database
    database.close()


# ------------------------------------------------------------------------------------------ the process


class BotRun:
    """The real `python -m bot`; stopping it never blocks the event loop the emulator runs in."""

    def __init__(self, process: BotProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    async def ready(self, emulator: Any, timeout: float = 60) -> None:
        """Up once it long-polls (after setMyCommands and the delivery worker's start)."""
        since = emulator.calls()[-1]["seq"] if emulator.calls() else 0
        await wait_until(lambda: emulator.calls(since=since, method="getUpdates") or self._exited(), timeout,
                         "the bot polls")
        self._exited()

    def _exited(self) -> bool:
        if not self.alive():
            raise AssertionError(f"the bot exited with {self.process.proc.returncode}:\n{self.process.output()}")
        return False

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process.proc is not None
        if self.process.proc.poll() is None:
            self.process.proc.send_signal(sig)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.process.proc.poll() is None:
            if loop.time() > deadline:
                self.process.proc.kill()
                self.process.proc.wait()
                raise AssertionError(f"the bot did not exit within {timeout} s after signal {sig}")
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            self.process.out.close()
        return self.process.proc.returncode

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.process.output()


@pytest.fixture
async def start_bot(tmp_path: Path, emulator: Any, client: Any) -> AsyncIterator[Callable[..., Any]]:
    """`await start_bot(**env)`: the real bot (the staff chat and managers exist: `client` made them),
    polling the emulator. Every process is stopped at teardown, asynchronously."""
    started: list[BotRun] = []

    async def start(**extra: Any) -> BotRun:
        env = settings_env(tmp_path, emulator.base_url, **extra)
        process = BotProcess(env, tmp_path, tmp_path / "bot.log")
        process.start()
        bot = BotRun(process)
        started.append(bot)
        await bot.ready(emulator)
        return bot

    yield start
    for bot in started:  # the clean stop is tested elsewhere (tests/e2e): here it would only cost time
        if bot.alive():
            await bot.kill()


class Shared:
    """One bot process (and emulator) shared by the tests of a module that do not restart it."""

    def __init__(self, emulator: Any, bot: BotRun, db: Db) -> None:
        self.emulator, self.bot, self.db = emulator, bot, db

    def idle_outbox(self) -> bool:
        from bot.db.models import OutboxMessage

        return not self.db.rows(OutboxMessage, OutboxMessage.status.in_(("pending", "sending")))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """The real bot with FLOOD_MESSAGES=20 (so a burst of ten is not flood), for a whole module; the
    tests using it are marked `asyncio(loop_scope="module")`, give every prospect its own id and clear
    their faults (`scene`)."""
    from bot.emulator import run_emulator

    path = tmp_path_factory.mktemp("shared")
    async with run_emulator() as emulator:
        emulator.create_chat(STAFF_CHAT, type="supergroup", title="Staff")
        for manager in MANAGERS:
            emulator.set_member(STAFF_CHAT, manager, "member")
        process = BotProcess(settings_env(path, emulator.base_url, flood_messages=20), path, path / "bot.log")
        process.start()
        bot = BotRun(process)
        db = Db(path / "leadbot.db")
        try:
            await bot.ready(emulator)
            yield Shared(emulator, bot, db)
        finally:
            if bot.alive():
                await bot.kill()
            db.close()


@pytest.fixture
def scene(shared_bot: Shared) -> Iterator[Shared]:
    """The shared bot for one test; its faults are cleared afterwards."""
    yield shared_bot
    shared_bot.emulator.clear_faults()


_NUMBERS = re.compile(r"\d[\d ()-]*\d")


def assert_no_personal_data(text: str, secrets: list[str]) -> None:
    """None of `secrets` (names, usernames, phones in any spelling, e-mails) appears in `text`."""
    numbers = {re.sub(r"\D", "", found) for found in _NUMBERS.findall(text)}
    for secret in secrets:
        assert secret not in text, f"personal data found: {secret!r}"
        if secret.startswith("+"):
            assert not any(secret[1:] in number for number in numbers), f"a phone number found: {secret!r}"
