"""The sandbox: the whole funnel in a browser, without a Telegram token.

``python -m bot.sandbox`` (``make sandbox``) starts

* the project's Bot API emulator (``bot.emulator``), which also serves a web page (``bot/emulator/static``)
  with three Telegram-like chats side by side: prospects, the staff group and an admin;
* the REAL bot, ``python -m bot``, as a child process that knows nothing about the sandbox: it is
  given a fake token and ``TELEGRAM_API_URL`` = the emulator, its own SQLite file
  (``data/sandbox.db`` by default, so ``data/leadbot.db`` is never touched), the staff chat, the
  admin and the managers of the sandbox world, and ``FUNNEL_FILE`` when it is set;

and prints the page's address. The page drives the emulator's control API (``/control/...``) and
follows its event stream; this module adds ``/sandbox/...``: the world (``GET /sandbox/config``),
new prospects (``POST /sandbox/prospects``) and the reset button (``POST /sandbox/reset``: stop the bot,
wipe its database and the emulator, recreate the world, start the bot again).

The bot is restarted if it dies (a configuration error, exit code 2, is shown on the page instead:
fix the funnel file and press reset). SIGINT/SIGTERM stop the bot, then the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import ctypes
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.emulator.server import ControlError, Emulator

JSON = dict[str, Any]

STATIC_DIR = Path(__file__).resolve().parent / "emulator" / "static"
DEFAULT_PORT = 8080
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/sandbox.db"
# The shape of a real token (digits, a colon, 35 characters); the emulator takes the bot id from it.
TOKEN = "7000000001:SANDBOX-fake-token-not-for-telegram0"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
CONFIG_ERROR_EXIT = 2  # `python -m bot` exits with 2 on a configuration error: restarting will not help
MAX_RESTARTS = 3  # unexpected deaths within RESTART_WINDOW before giving up
RESTART_WINDOW = 60.0

STAFF_CHAT: JSON = {"id": -1001000000001, "title": "Sales team"}
MANAGERS: list[JSON] = [
    {
        "id": 7001,
        "first_name": "Maria",
        "last_name": "Koval",
        "username": "maria_sales",
        "language_code": "en",
    },
    {
        "id": 7002,
        "first_name": "Taras",
        "last_name": "Bondar",
        "username": "taras_sales",
        "language_code": "en",
    },
]
ADMIN: JSON = {
    "id": 9001,
    "first_name": "Olga",
    "last_name": "Shevchenko",
    "username": "olga_admin",
    "language_code": "en",
}
PROSPECTS: list[JSON] = [
    {"id": 5001, "first_name": "Anna", "last_name": "Smith", "language_code": "en", "phone": "+12025550101"},
    {
        "id": 5002,
        "first_name": "Oksana",
        "last_name": "Melnyk",
        "language_code": "uk",
        "phone": "+380671230002",
    },
    {
        "id": 5003,
        "first_name": "Dmitry",
        "last_name": "Volkov",
        "language_code": "ru",
        "phone": "+79161230003",
    },
]
LANGUAGES = ("en", "uk", "ru")
# a plausible, valid phone number per language for prospects added on the page
_PHONE_PREFIX = {"en": "+1202555", "uk": "+38067123", "ru": "+7916123"}


def _log(message: str) -> None:
    print(f"sandbox | {time.strftime('%H:%M:%S')} {message}", flush=True)


def sqlite_files(database_url: str) -> list[Path]:
    """The files of an SQLite database URL (with its WAL and journal), or [] for other databases."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    database = url.database
    if (
        not url.drivername.startswith("sqlite")
        or not database
        or database == ":memory:"
        or database.startswith("file:")
    ):
        return []
    path = Path(database).expanduser()
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def wipe_database(database_url: str) -> bool:
    """Delete the sandbox's SQLite files; False when the URL is not an SQLite file (nothing deleted)."""
    files = sqlite_files(database_url)
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return bool(files)


def _real_database_urls(cwd: Path) -> list[str]:
    """The database(s) the real bot would use here: $DATABASE_URL, .env's DATABASE_URL, the default."""
    urls = ["sqlite+aiosqlite:///data/leadbot.db"]
    if os.environ.get("DATABASE_URL"):
        urls.append(os.environ["DATABASE_URL"])
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (cwd / ".env").read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "DATABASE_URL" and value.strip():
                urls.append(value.strip().strip("'\""))
    return urls


def check_not_real_database(database_url: str, cwd: Path) -> None:
    """The sandbox wipes its database: refuse one that the real bot uses."""
    mine = sqlite_files(database_url)
    if not mine:
        raise SystemExit(f"sandbox: the sandbox wipes its database; use an SQLite file, not {database_url!r}")
    for url in _real_database_urls(cwd):
        with contextlib.suppress(Exception):
            theirs = sqlite_files(url)
            if theirs and (cwd / theirs[0]).resolve() == (cwd / mine[0]).resolve():
                raise SystemExit(
                    f"sandbox: {database_url} is the real bot's database ({url}); the sandbox wipes its "
                    "database, so give it another file (--database-url or SANDBOX_DATABASE_URL)"
                )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the bot gets SIGTERM if the sandbox dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class BotProcess:
    """``python -m bot`` as a child process: output echoed with a prefix, restarted if it dies."""

    def __init__(
        self, env: dict[str, str], cwd: Path, on_status: Callable[[JSON], None], polls: Callable[[], int]
    ) -> None:
        """``polls`` counts the getUpdates requests the API server has seen: the bot is up once it grows."""
        self.env, self.cwd, self.on_status, self.polls = env, cwd, on_status, polls
        self.proc: asyncio.subprocess.Process | None = None
        self.output: deque[str] = deque(maxlen=60)
        self.status: JSON = {"state": "stopped"}
        self._stopping = False
        self._deaths: deque[float] = deque()
        self._watcher: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._ready_watch: asyncio.Task[None] | None = None
        self.ready = False
        self.starts = 0

    def _set_status(self, state: str, **extra: Any) -> None:
        self.status = {"state": state, "pid": self.proc.pid if self.proc else None, **extra}
        self.on_status(self.status)

    async def start(self) -> None:
        self._stopping = False
        self.ready = False  # set once it polls for updates
        self.output.clear()
        mark = self.polls()
        kwargs: JSON = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent
        if os.name == "posix":
            kwargs["start_new_session"] = True  # Ctrl+C reaches the sandbox only; the sandbox stops the bot
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot",
            cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, limit=1 << 20, **kwargs,
        )  # fmt: skip
        self.starts += 1
        _log(f"bot started (pid {self.proc.pid}): {sys.executable} -m bot")
        self._set_status("starting")
        self._pump = asyncio.create_task(self._echo(self.proc))
        self._ready_watch = asyncio.create_task(self._await_polling(self.proc, mark))
        self._watcher = asyncio.create_task(self._watch(self.proc))

    async def _echo(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the limit
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            print(f"bot     | {line}", flush=True)

    def _problem(self, code: int | None = None) -> str:
        """The most telling line of the bot's last output (a configuration error, an exception)."""
        lines = [line.strip() for line in self.output if line.strip()]
        for line in reversed(lines):
            head = line.split(":", 1)[0]
            if "configuration error" in line or head.endswith(("Error", "Exception")) or " CRITICAL " in line:
                return line
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return ""

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2)
        if self._stopping or proc is not self.proc:
            return
        problem = self._problem(code)
        _log(f"the bot exited unexpectedly (exit code {code}){': ' + problem if problem else ''}")
        if not self.ready:  # it never got as far as polling: restarting will not help
            self._set_status("error", exit_code=code, detail=problem or f"exit code {code}")
            _log("not restarting it: it died before it ever polled; fix the problem above, then press Reset")
            return
        if code == CONFIG_ERROR_EXIT:
            self._set_status("error", exit_code=code, detail=problem or "configuration error")
            _log("not restarting it: fix the configuration (e.g. FUNNEL_FILE), then press Reset on the page")
            return
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW:
            self._deaths.popleft()
        if len(self._deaths) > MAX_RESTARTS:
            self._set_status("error", exit_code=code, detail=problem or f"exit code {code}")
            _log(f"the bot died {len(self._deaths)} times within {RESTART_WINDOW:.0f} s; not restarting it")
            return
        self._set_status("restarting", exit_code=code, detail=problem)
        await asyncio.sleep(1.0)
        if not self._stopping and proc is self.proc:
            _log("restarting the bot")
            await self.start()

    async def _await_polling(self, proc: asyncio.subprocess.Process, mark: int) -> None:
        while proc.returncode is None and proc is self.proc and not self._stopping:
            if self.polls() > mark:
                self.ready = True
                self._set_status("running")
                return
            await asyncio.sleep(0.1)

    async def wait_ready(self, timeout: float) -> bool:
        """True once the bot polls for updates; False if it failed or did not within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready:
                return True
            if self.status.get("state") == "error":
                return False
            await asyncio.sleep(0.1)
        _log(f"the bot did not start polling within {timeout:.0f} s")
        return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _log(f"the bot did not stop within {timeout:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc is not None:
            _log(f"bot stopped (exit code {proc.returncode})")
        for task in (self._watcher, self._pump, self._ready_watch):
            if task is not None and not task.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 2)
        if proc is not None:
            self._set_status("stopped", exit_code=proc.returncode)


class Sandbox:
    """The emulator + the bot + the page; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        database_url: str = DEFAULT_DATABASE_URL,
        funnel_file: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.database_url = database_url
        self.funnel_file = funnel_file
        self.cwd = cwd or Path.cwd()
        self.emulator = Emulator(bot_username="leadbot_sandbox_bot", bot_first_name="Lead Bot")
        self.emulator.serve_page(STATIC_DIR)
        self.prospects: list[JSON] = copy.deepcopy(PROSPECTS)
        self.bot: BotProcess | None = None
        self.page_url = ""
        self._lock = asyncio.Lock()
        self._add_routes(self.emulator.app)

    # ------------------------------------------------------------------ the world

    def _create_world(self) -> None:
        emu = self.emulator
        emu.create_chat(STAFF_CHAT["id"], type="supergroup", title=STAFF_CHAT["title"])
        for manager in MANAGERS:
            emu.add_user(self._user(manager))
            emu.set_member(STAFF_CHAT["id"], manager["id"], "member")
        # the admin has opened the bot before (so the bot may write to them, e.g. the digest)
        emu.add_user(self._user(ADMIN))
        emu.create_chat(ADMIN["id"], type="private", title=ADMIN["first_name"])

    @staticmethod
    def _user(person: JSON) -> JSON:
        return {
            "id": person["id"],
            "is_bot": False,
            "first_name": person["first_name"],
            **{k: person[k] for k in ("last_name", "username", "language_code") if person.get(k)},
        }

    def config(self) -> JSON:
        bot = self.emulator.bot_user
        return {
            "bot": {"id": bot["id"], "first_name": bot["first_name"], "username": bot["username"]},
            "staff": STAFF_CHAT,
            "managers": [self._user(m) for m in MANAGERS],
            "admin": self._user(ADMIN),
            "prospects": copy.deepcopy(self.prospects),
            "languages": list(LANGUAGES),
            "funnel_file": self.funnel_file or "",
            "database_url": self.database_url,
            "status": self.bot.status if self.bot else {"state": "stopped"},
            "event_seq": self.emulator.bus.seq,
        }

    def add_prospect(self, first_name: str, language_code: str = "en", last_name: str | None = None) -> JSON:
        name = " ".join(str(first_name or "").split())[:64]
        if not name:
            raise ControlError(400, "a prospect needs a name")
        if language_code not in LANGUAGES:
            raise ControlError(400, f"language must be one of {', '.join(LANGUAGES)}")
        new_id = max(p["id"] for p in [*PROSPECTS, *self.prospects]) + 1
        prospect = {
            "id": new_id,
            "first_name": name,
            "language_code": language_code,
            "phone": f"{_PHONE_PREFIX[language_code]}{new_id % 10000:04d}",
        }
        if last_name:
            prospect["last_name"] = " ".join(str(last_name).split())[:64]
        self.prospects.append(prospect)
        self.emulator.bus.publish("sandbox", what="prospects", prospects=copy.deepcopy(self.prospects))
        return prospect

    # ------------------------------------------------------------------ the bot

    def bot_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=self.api_url,
            DATABASE_URL=self.database_url,
            STAFF_CHAT_ID=str(STAFF_CHAT["id"]),
            ADMIN_IDS=str(ADMIN["id"]),
            MANAGER_IDS=",".join(str(m["id"]) for m in MANAGERS),
            POLLING_TIMEOUT="10",
            # whatever .env says, the sandbox bot long-polls the emulator and keeps its state in its database
            WEBHOOK_URL="",
            REDIS_URL="",
            PYTHONUNBUFFERED="1",
        )
        if self.funnel_file:
            env["FUNNEL_FILE"] = self.funnel_file
        return env

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def _on_status(self, status: JSON) -> None:
        self.emulator.bus.publish("sandbox", what="status", status=copy.deepcopy(status))

    async def _start_bot(self) -> bool:
        """Start the bot and wait until it polls for updates; False if it did not come up."""
        self.bot = BotProcess(
            self.bot_env(), self.cwd, self._on_status, lambda: self.emulator.state()["polls"]
        )
        await self.bot.start()
        return await self.bot.wait_ready(READY_TIMEOUT)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> bool:
        try:
            base_url = await self.emulator.start(self.host, self.port)
        except OSError as exc:
            raise SystemExit(
                f"sandbox: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                f"choose another port: SANDBOX_PORT=8090 make sandbox (or --port 8090)"
            ) from None
        self.port = int(base_url.rsplit(":", 1)[1])  # the bound port (--port 0 picks a free one)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        self.page_url = f"http://{shown}:{self.port}/"
        # the emulator starts empty (message and update ids from 1): so must the database, or the bot
        # would take the new updates for ones it already handled
        wipe_database(self.database_url)
        self._create_world()
        _log(f"emulator on {self.api_url}; database {self.database_url} (wiped on start and on reset)")
        if self.funnel_file:
            _log(f"funnel file: {self.funnel_file}")
        return await self._start_bot()

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop()
        await self.emulator.stop()

    async def reset(self) -> JSON:
        """Stop the bot, wipe its database and the emulator, recreate the world, start the bot again."""
        async with self._lock:
            _log("reset: stopping the bot")
            if self.bot is not None:
                await self.bot.stop()
            wiped = wipe_database(self.database_url)
            if not wiped:
                _log(f"reset: {self.database_url} is not an SQLite file; its data is kept")
            self.prospects = copy.deepcopy(PROSPECTS)
            self.emulator.reset()
            self._create_world()
            ok = await self._start_bot()
            _log("reset: done" if ok else "reset: the bot did not come back, see its output above")
            return {"ok": ok, **self.config()}

    # ------------------------------------------------------------------ HTTP

    def _add_routes(self, app: web.Application) -> None:
        async def get_config(_request: web.Request) -> web.Response:
            return web.json_response(self.config())

        async def post_reset(_request: web.Request) -> web.Response:
            return web.json_response(await self.reset())

        async def post_prospect(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise ControlError(400, "invalid JSON body") from None
            if not isinstance(body, dict):
                raise ControlError(400, "a JSON object is expected")
            prospect = self.add_prospect(
                str(body.get("first_name") or ""),
                str(body.get("language_code") or "en"),
                body.get("last_name"),
            )
            return web.json_response(prospect)

        app.router.add_get("/sandbox/config", get_config)
        app.router.add_post("/sandbox/reset", post_reset)
        app.router.add_post("/sandbox/prospects", post_prospect)


def _banner(url: str, ok: bool) -> str:
    lines = [
        f"Sandbox ready: {url}",
        "Open it in a browser: a prospect, the staff group and an admin, side by side.",
        "Stop with Ctrl+C.",
    ]
    if not ok:
        lines.insert(1, "WARNING: the bot is not running (see its output above); the page shows why.")
    width = max(map(len, lines)) + 4
    return "\n".join(["", "=" * width, *(f"  {line}" for line in lines), "=" * width, ""])


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox",
        description="The bot against the Bot API emulator, with a web page of Telegram-like chats; no token needed.",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("SANDBOX_HOST", "127.0.0.1"),
        help="default 127.0.0.1: the page has no password, keep it to this machine",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SANDBOX_PORT") or DEFAULT_PORT),
        help="default: $SANDBOX_PORT or 8080; 0 picks a free port",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SANDBOX_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="the sandbox bot's SQLite database, wiped on every start and reset "
        "(default: $SANDBOX_DATABASE_URL or data/sandbox.db)",
    )
    parser.add_argument(
        "--funnel-file",
        default=os.environ.get("FUNNEL_FILE") or None,
        help="try your own funnel file (default: $FUNNEL_FILE, else the bot's default)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    check_not_real_database(args.database_url, Path.cwd())
    funnel_file = args.funnel_file
    if funnel_file and not Path(funnel_file).expanduser().is_file():
        raise SystemExit(f"sandbox: FUNNEL_FILE {funnel_file!r} does not exist")
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        funnel_file=funnel_file,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        ok = await sandbox.start()
        print(_banner(sandbox.page_url, ok), flush=True)
        await stop.wait()
        _log("stopping")
    finally:
        await sandbox.stop()
        _log("stopped")


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
