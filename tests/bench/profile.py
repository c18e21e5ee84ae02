"""Profiling the bot under load: py-spy (sampling, on-CPU only) when it is installed, else pyinstrument.

py-spy attaches to the running bot process (`py-spy record --pid ... --format raw`), so the bot runs
unchanged; its "raw" output (collapsed stacks) is summarised here by package and by function:

    python -m tests.bench.profile /tmp/profile-sqlite.txt      # summary of a recorded profile

SQLAlchemy's asyncio layer runs the ORM in greenlets and aiosqlite runs SQLite in a thread of its own, so
samples do not all hang under the event loop: the "area" of a sample is decided from its own frames
(innermost first), which is what a reader wants to know anyway - where did the CPU go.
"""
from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# (area, substrings of a frame's file) - first match from the innermost frame outwards
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sqlite (C library, aiosqlite thread)", ("aiosqlite/core.py", "aiosqlite/cursor.py")),
    ("SQLAlchemy (ORM, Core, asyncio adaptation)", ("sqlalchemy/",)),
    ("pydantic (aiogram types)", ("pydantic/", "pydantic_core/", "aiogram/types/", "aiogram/client/context")),
    ("json", ("json/",)),
    ("aiogram dispatcher, filters, FSM", ("aiogram/dispatcher/", "aiogram/filters/", "aiogram/fsm/",
                                          "aiogram/utils/")),
    ("aiogram client (Bot API calls)", ("aiogram/client/", "aiogram/methods/")),
    ("aiohttp (HTTP client)", ("aiohttp/", "yarl/", "multidict/")),
    ("logging", ("logging/",)),
    ("i18n (Fluent)", ("fluent/", "aiogram_i18n/", "bot/i18n.py", "babel/")),
    ("validation (phonenumbers, email)", ("phonenumbers/", "email_validator/", "idna/", "dns/")),
    ("project: middlewares", ("bot/middlewares.py",)),
    ("project: polling", ("bot/polling.py",)),
    ("project: storage", ("bot/storage.py",)),
    ("project: delivery worker / outbox", ("bot/delivery.py", "bot/outbox.py", "bot/cards.py")),
    ("project: services", ("bot/services/",)),
    ("project: handlers", ("handlers/",)),
    ("project: funnel", ("funnel/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py", "concurrent/", "threading.py", "queue.py")),
)
IDLE = ("EpollSelector.select", "select (selectors", "_worker (concurrent/futures/thread.py:81)",
        "_connection_worker_thread (aiosqlite/core.py:59)",
        "Condition.wait", "SimpleQueue.get", "Queue.get")


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in AREAS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    """Shares of the on-CPU samples: by area (innermost known package), by function (self), and the
    inclusive share of the project's own frames."""
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if any(marker in frames[-1] for marker in IDLE):
            idle += n
            continue
        total += n
        areas[_area(frames)] += n
        own[frames[-1]] += n
        for frame in set(frames):
            if any(part in frame for part in ("bot/", "handlers/", "funnel/")) or "check_response" in frame \
                    or "Session.get " in frame or "Session.flush " in frame or "Session.execute " in frame:
                inclusive[frame] += n
    if not total:
        return {"samples": 0}

    def share(counter: collections.Counter[str], limit: int) -> dict[str, float]:
        return {key: round(value / total * 100, 1) for key, value in counter.most_common(limit)}

    return {
        "samples_on_cpu": total,
        "samples_idle": idle,
        "by_area_pct": share(areas, 30),
        "top_self_pct": share(own, top),
        "top_inclusive_pct": share(inclusive, top),
    }


def render(summary: dict[str, Any]) -> str:
    if not summary.get("samples_on_cpu"):
        return "no samples"
    lines = [f"{summary['samples_on_cpu']} on-CPU samples ({summary['samples_idle']} idle left out)", "",
             "by area (innermost known package):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary["by_area_pct"].items()]
    lines += ["", "functions, self time:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary["top_self_pct"].items()]
    lines += ["", "project frames and key calls, inclusive:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary["top_inclusive_pct"].items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- recording


def py_spy() -> str | None:
    """The py-spy binary: $PY_SPY, else on PATH, else next to this interpreter."""
    candidates = [os.environ.get("PY_SPY"), shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))]
    return next((c for c in candidates if c and Path(c).exists()), None)


class Recorder:
    """`py-spy record` attached to a running process, writing collapsed stacks to `out`."""

    def __init__(self, binary: str, pid: int, out: Path, rate: int = 250) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "--nonblocking",
             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str | None:
        """Stop recording; returns py-spy's complaint when there is no profile."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists() or not self.out.stat().st_size:
            return (err or b"").decode(errors="replace")[-500:] or "py-spy wrote nothing"
        return None


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"== {arg}")
        print(render(summarize(Path(arg))))
