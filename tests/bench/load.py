"""The load generator: simulated prospects driven through the emulator's control API over HTTP.

Every prospect acts like a person in Telegram: it sends a message or presses a button (`/control/message`,
`/control/callback`) and waits for the bot's answer before its next action. Answers are read from the
emulator's event stream (`/control/events`, server-sent events).

Reply latency of an update = (time the emulator recorded the bot's reply) - (time the emulator queued the
update); both are the emulator's own `ts` of its `message` and `update` events, so neither the load
generator's scheduling nor its HTTP round trips are counted. The "reply" to an action is the bot's new
message that the prospect needs for its next action (for a button press: the next question, not the
callback answer or the edit of the old question).

Two ways to offer load:

* `closed_loop` - N prospects at once, each acting as soon as it has its answer (throughput: as fast as
  the bot can go);
* `open_loop`   - a fixed offered rate (updates a second) regardless of how the bot copes; a prospect acts
  again at the earliest `think` seconds after its answer and new prospects arrive when no waiting one
  is ready (latency at a given rate).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]


# ----------------------------------------------------------------------------------------- the script


def _buttons(message: JSON) -> list[JSON]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard") or () for button in row]


def button_data(message: JSON, label: str) -> str | None:
    """The callback data of the message's inline button whose text contains `label`."""
    return next((str(b["callback_data"]) for b in _buttons(message) if label in str(b.get("text", ""))
                 and "callback_data" in b), None)


def has_button(label: str) -> Predicate:
    def check(message: JSON) -> bool:
        return any(label in str(button.get("text", "")) for button in _buttons(message))

    check.__name__ = f"button {label!r}"
    return check


def has_contact_keyboard(message: JSON) -> bool:
    markup = message.get("reply_markup") or {}
    return any(isinstance(b, dict) and b.get("request_contact") for row in markup.get("keyboard") or () for b in row)


def text_contains(fragment: str) -> Predicate:
    def check(message: JSON) -> bool:
        return fragment in str(message.get("text", ""))

    check.__name__ = f"text {fragment!r}"
    return check


def any_message(message: JSON) -> bool:
    return True


@dataclass(frozen=True)
class Action:
    name: str
    kind: str  # text | contact | press
    arg: str  # the text (with {name}/{email} placeholders), the phone, or the button label
    expect: Predicate  # the bot's message that answers this action


# The full dialogue of the default funnel (funnel/files/default.toml), as in tests/e2e: deep-link start,
# consent, name, contact share, email, six answers, skip, confirmation, then /manager from the menu.
DIALOGUE: tuple[Action, ...] = (
    Action("start", "text", "/start bench", has_button("I agree")),
    Action("consent", "press", "I agree", any_message),
    Action("name", "text", "{name}", has_contact_keyboard),
    Action("contact", "contact", "{phone}", has_button("Skip")),
    Action("email", "text", "{email}", has_button("A product or service")),
    Action("need", "press", "A product or service", has_button("Over $20,000")),
    Action("budget", "press", "Over $20,000", has_button("As soon as possible")),
    Action("timeline", "press", "As soon as possible", has_button("Company")),
    Action("customer", "press", "Company", has_button("51–250")),
    Action("size", "press", "51–250", has_button("I make the decision")),
    Action("role", "press", "I make the decision", has_button("Skip")),
    Action("skip", "press", "Skip", has_button("Confirm")),
    Action("confirm", "press", "Confirm", text_contains("Thank you")),
    Action("manager", "text", "/manager", any_message),
)

# What the memory run leaves open: a dialogue started, consent given, the name answered.
OPENING: tuple[Action, ...] = DIALOGUE[:3]


def echo_script(length: int = len(DIALOGUE)) -> tuple[Action, ...]:
    """As many plain messages as the dialogue has updates, for the echo bot."""
    return tuple(Action(f"echo{i}", "text", f"hello {i} from {{name}}", any_message) for i in range(length))


def make_user(uid: int) -> JSON:
    return {"id": uid, "is_bot": False, "first_name": f"Bench{uid}", "language_code": "en",
            "username": f"bench{uid}"}


def fill(text: str, uid: int) -> str:
    return text.format(name=f"Bench User {uid}", email=f"bench{uid}@example.com")


def contact_of(user: JSON) -> JSON:
    """The contact a prospect shares: their own, with their phone."""
    return {"phone_number": phone_of(user["id"]), "first_name": user["first_name"], "user_id": user["id"]}


def phone_of(uid: int) -> str:
    return f"+38067{uid % 10_000_000:07d}"


# ----------------------------------------------------------------------------------------- the event feed


class Lost(Exception):
    """No answer within the timeout."""


@dataclass
class _Waiter:
    after_seq: int
    predicate: Predicate
    future: asyncio.Future[tuple[float, JSON]]


class Feed:
    """The emulator's event stream, routed to the prospect waiting in each chat."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url
        self.update_ts: dict[int, float] = {}
        self.recent: dict[int, deque[tuple[int, float, JSON]]] = {}
        self.waiters: dict[int, _Waiter] = {}
        self.last_seq = 0
        self.gaps = 0  # events the stream skipped (the emulator keeps a bounded history)
        self.bot_messages = 0
        self.staff_messages = 0
        self.events = 0
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> Feed:
        async with self.http.get(f"{self.base_url}/control/state") as resp:
            self.last_seq = int((await resp.json())["event_seq"])
        self._task = asyncio.create_task(self._read(self.last_seq))
        await asyncio.wait_for(self._connected.wait(), 30)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self, since: int) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.http.get(f"{self.base_url}/control/events", params={"since": str(since)},
                                 timeout=timeout) as resp:
            self._connected.set()
            async for line in resp.content:
                if line.startswith(b"data: "):
                    self._on_event(json.loads(line[6:]))

    def _on_event(self, event: JSON) -> None:
        self.events += 1
        seq = event["seq"]
        if seq != self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        self.last_seq = seq
        kind = event["type"]
        if kind == "update":
            self.update_ts[event["update"]["update_id"]] = event["ts"]
        elif kind == "message" and event.get("from_bot"):
            chat_id = event["chat_id"]
            if chat_id < 0:
                self.staff_messages += 1
                return
            self.bot_messages += 1
            entry = (seq, event["ts"], event["message"])
            recent = self.recent.get(chat_id)
            if recent is None:
                recent = self.recent[chat_id] = deque(maxlen=16)
            recent.append(entry)
            waiter = self.waiters.get(chat_id)
            if waiter is not None and seq > waiter.after_seq and waiter.predicate(entry[2]) \
                    and not waiter.future.done():
                waiter.future.set_result((entry[1], entry[2]))

    async def answer(self, chat_id: int, after_seq: int, predicate: Predicate, timeout: float
                     ) -> tuple[float, JSON]:
        """The first bot message in the chat after event `after_seq` that matches (already seen or not)."""
        for seq, ts, message in self.recent.get(chat_id, ()):
            if seq > after_seq and predicate(message):
                return ts, message
        future: asyncio.Future[tuple[float, JSON]] = asyncio.get_running_loop().create_future()
        self.waiters[chat_id] = _Waiter(after_seq, predicate, future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Lost(f"chat {chat_id}: no {getattr(predicate, '__name__', 'answer')} "
                       f"after event {after_seq} within {timeout} s") from None
        finally:
            self.waiters.pop(chat_id, None)

    def forget(self, chat_id: int) -> None:
        self.recent.pop(chat_id, None)


# ----------------------------------------------------------------------------------------- prospects


@dataclass
class Sample:
    step: str
    update_id: int
    queued: float  # emulator ts of the update
    replied: float  # emulator ts of the answer

    @property
    def latency_ms(self) -> float:
        return (self.replied - self.queued) * 1000


class Driver:
    """Performs the actions of the prospects through the control API."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, feed: Feed, timeout: float) -> None:
        self.http, self.base_url, self.feed, self.timeout = http, base_url, feed, timeout

    async def _post(self, path: str, body: JSON) -> JSON:
        async with self.http.post(self.base_url + path, json=body) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"{path}: {resp.status} {payload}")
            return payload

    async def inject(self, uid: int, action: Action, previous: JSON | None) -> JSON:
        user = make_user(uid)
        if action.kind == "text":
            return await self._post("/control/message", {"user": user, "text": fill(action.arg, uid)})
        if action.kind == "contact":
            return await self._post("/control/message", {"user": user, "contact": contact_of(user)})
        if action.kind == "press":
            data = button_data(previous or {}, action.arg)
            if data is not None and previous is not None:
                return await self._post("/control/callback", {
                    "user": user, "chat_id": uid, "message_id": previous["message_id"], "data": data})
            return await self._post("/control/press", {"user": user, "chat_id": uid, "text": action.arg})
        raise ValueError(action.kind)

    async def step(self, uid: int, action: Action, previous: JSON | None) -> tuple[Sample, JSON]:
        result = await self.inject(uid, action, previous)
        replied, message = await self.feed.answer(uid, int(result["event_seq"]), action.expect, self.timeout)
        queued = self.feed.update_ts.get(int(result["update_id"]), replied)
        return Sample(action.name, int(result["update_id"]), queued, replied), message


# ----------------------------------------------------------------------------------------- figures


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(samples: list[Sample], errors: list[str], unanswered: int = 0) -> JSON:
    """Throughput and latency percentiles. Updates still unanswered when the run ended (`unanswered`) and
    prospects that gave up (`errors`) count as infinitely late: a percentile that falls on them is None."""
    latencies = sorted(s.latency_ms for s in samples)
    out: JSON = {"updates": len(samples), "lost": len(errors) + unanswered}
    if errors:
        out["first_errors"] = errors[:3]
    if not samples:
        return out
    first, last = min(s.queued for s in samples), max(s.replied for s in samples)
    seconds = max(last - first, 1e-9)
    censored = latencies + [math.inf] * (len(errors) + unanswered)

    def pct(p: float) -> float | None:
        value = percentile(censored, p)
        return None if math.isinf(value) else round(value, 1)

    out.update({
        "seconds": round(seconds, 2),
        "updates_per_s": round(len(samples) / seconds, 1),
        "latency_ms": {
            "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "max": round(latencies[-1], 1) if not out["lost"] else None,
            "mean_answered": round(sum(latencies) / len(latencies), 1),
        },
    })
    by_step: dict[str, list[float]] = {}
    for s in samples:
        by_step.setdefault(s.step, []).append(s.latency_ms)
    out["p50_by_step_ms"] = {k: round(percentile(sorted(v), 50), 1) for k, v in by_step.items()}
    out["p99_by_step_ms"] = {k: round(percentile(sorted(v), 99), 1) for k, v in by_step.items()}
    by_second: dict[int, list[float]] = {}  # where in the run the tail is: a start-up burst, or steady
    for s in samples:
        by_second.setdefault(int(s.queued - first), []).append(s.latency_ms)
    out["p99_by_second_ms"] = [round(percentile(sorted(by_second[i]), 99), 1) if i in by_second else None
                               for i in range(max(by_second) + 1)]
    return out


@dataclass
class Run:
    """One load phase against one running bot."""

    http: aiohttp.ClientSession
    base_url: str
    timeout: float = 60.0
    feed: Feed = field(init=False)
    driver: Driver = field(init=False)

    async def __aenter__(self) -> Self:
        self.feed = await Feed(self.http, self.base_url).start()
        self.driver = Driver(self.http, self.base_url, self.feed, self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.feed.stop()

    def stream_info(self) -> JSON:
        return {"events": self.feed.events, "event_gaps": self.feed.gaps,
                "bot_messages": self.feed.bot_messages, "staff_messages": self.feed.staff_messages}

    async def prospect(self, uid: int, script: Sequence[Action], samples: list[Sample], errors: list[str],
                       forget: bool = True, deadline: float | None = None) -> bool:
        """Play one prospect through `script`; False when it stopped early (no answer, or the deadline)."""
        previous: JSON | None = None
        try:
            for action in script:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                sample, previous = await self.driver.step(uid, action, previous)
                samples.append(sample)
            return True
        except Lost as exc:
            errors.append(str(exc))
            return False
        finally:
            if forget:
                self.feed.forget(uid)

    async def closed_loop(self, script: Sequence[Action], prospects: int, first_uid: int,
                          concurrency: int | None = None, max_seconds: float | None = None) -> JSON:
        """`prospects` at once (or `concurrency` at a time), each as fast as the bot answers. With
        `max_seconds`, no prospect starts a new action after that long (a slow bot is measured on the
        part it did, and the run stays bounded)."""
        samples: list[Sample] = []
        errors: list[str] = []
        gate = asyncio.Semaphore(concurrency or prospects)
        began = time.monotonic()
        deadline = began + max_seconds if max_seconds else None
        finished = 0

        async def one(uid: int) -> None:
            nonlocal finished
            async with gate:
                if await self.prospect(uid, script, samples, errors, deadline=deadline):
                    finished += 1

        await asyncio.gather(*(one(first_uid + i) for i in range(prospects)))
        out = summarize(samples, errors)
        out.update(prospects=prospects, completed_prospects=finished, wall_s=round(time.monotonic() - began, 2),
                   **self.stream_info())
        if finished < prospects and deadline is not None and time.monotonic() > deadline:
            out["stopped_after_s"] = max_seconds
        return out

    async def open_loop(self, script: Sequence[Action], rate: float, duration: float, first_uid: int,
                        think: float = 1.0, drain: float = 10.0) -> JSON:
        """`rate` updates a second for `duration` seconds, whatever the answers; then at most `drain`
        seconds for the last answers (what is still unanswered then counts as lost)."""
        loop = asyncio.get_running_loop()
        samples: list[Sample] = []
        errors: list[str] = []
        ready: deque[tuple[float, int, int, JSON | None]] = deque()  # (ready at, uid, next step, last message)
        tasks: set[asyncio.Task[None]] = set()
        next_uid = first_uid
        late = 0

        async def act(uid: int, index: int, previous: JSON | None) -> None:
            try:
                sample, message = await self.driver.step(uid, script[index], previous)
            except Lost as exc:
                errors.append(str(exc))
                self.feed.forget(uid)
                return
            samples.append(sample)
            if index + 1 < len(script):
                ready.append((loop.time() + think, uid, index + 1, message))
            else:
                self.feed.forget(uid)

        total = int(rate * duration)
        began = loop.time()
        for k in range(total):
            due = began + k / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 0.05:
                late += 1
            if ready and ready[0][0] <= loop.time():
                _, uid, index, previous = ready.popleft()
            else:
                uid, index, previous = next_uid, 0, None
                next_uid += 1
            task = asyncio.create_task(act(uid, index, previous))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        offered_s = loop.time() - began
        if tasks:
            await asyncio.wait(tasks, timeout=drain)
        unanswered = len(tasks)
        for task in list(tasks):
            task.cancel()
        out = summarize(samples, errors, unanswered)
        out.update(offered_rate=rate, offered_updates=total, offer_seconds=round(offered_s, 2), drain_s=drain,
                   injections_late_50ms=late, prospects=next_uid - first_uid, think_s=think, **self.stream_info())
        return out
