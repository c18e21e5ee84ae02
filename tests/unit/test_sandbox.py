"""The sandbox's plumbing without a browser: the world it creates, the bot's environment, the
database guard, new prospects. (The whole sandbox runs in tests/browser/test_sandbox.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.emulator.server import ControlError
from bot.sandbox import (
    ADMIN,
    MANAGERS,
    STAFF_CHAT,
    TOKEN,
    Sandbox,
    check_not_real_database,
    sqlite_files,
    wipe_database,
)
from bot.settings import TOKEN_RE, Settings
from bot.validation import normalize_phone


def test_sqlite_files_and_wipe(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite+aiosqlite:///{db}"
    assert sqlite_files(url)[0] == db
    assert sqlite_files("postgresql+asyncpg://u@h/db") == []
    assert sqlite_files("sqlite+aiosqlite:///:memory:") == []
    for path in sqlite_files(url)[:3]:
        path.write_text("x")
    assert wipe_database(url) is True
    assert not any(p.exists() for p in sqlite_files(url))
    assert wipe_database(url) is True  # nothing left: fine


def test_refuses_the_real_bots_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    check_not_real_database("sqlite+aiosqlite:///data/sandbox.db", tmp_path)
    with pytest.raises(SystemExit, match="real bot's database"):
        check_not_real_database("sqlite+aiosqlite:///data/leadbot.db", tmp_path)
    (tmp_path / ".env").write_text('BOT_TOKEN=x\nDATABASE_URL="sqlite+aiosqlite:///var/mine.db"\n')
    with pytest.raises(SystemExit):
        check_not_real_database("sqlite+aiosqlite:///var/mine.db", tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/prod.db")
    with pytest.raises(SystemExit):
        check_not_real_database(f"sqlite+aiosqlite:///{tmp_path}/prod.db", tmp_path)
    with pytest.raises(SystemExit, match="SQLite"):
        check_not_real_database("postgresql+asyncpg://u@h/db", tmp_path)


def test_the_bot_gets_a_complete_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com")
    monkeypatch.setenv("BOT_TOKEN", "1:real")
    sandbox = Sandbox(port=8099, database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db", funnel_file="my.toml")
    env = sandbox.bot_env()
    assert TOKEN_RE.match(TOKEN) and env["BOT_TOKEN"] == TOKEN
    assert env["TELEGRAM_API_URL"] == "http://127.0.0.1:8099"
    assert env["FUNNEL_FILE"] == "my.toml" and env["DATABASE_URL"].endswith("/s.db")
    assert env["REDIS_URL"] == "" and env["WEBHOOK_URL"] == ""
    fields = {k: v for k, v in env.items() if k in ("BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL",
                                                     "STAFF_CHAT_ID", "ADMIN_IDS", "MANAGER_IDS", "REDIS_URL",
                                                     "WEBHOOK_URL", "POLLING_TIMEOUT")}  # fmt: skip
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in fields.items()})
    assert settings.staff_chat_id == STAFF_CHAT["id"] and settings.admin_ids == [ADMIN["id"]]
    assert settings.manager_ids == [m["id"] for m in MANAGERS]
    assert not settings.redis_url and not settings.webhook_url
    assert Sandbox(host="0.0.0.0", port=1).api_url == "http://127.0.0.1:1"


def test_world_and_prospects() -> None:
    sandbox = Sandbox()
    sandbox._create_world()
    emulator = sandbox.emulator
    assert emulator.chat(STAFF_CHAT["id"])["chat"]["title"] == STAFF_CHAT["title"]
    for manager in MANAGERS:
        assert emulator._member(STAFF_CHAT["id"], manager["id"])["status"] == "member"
    assert emulator.chat(ADMIN["id"])["chat"]["type"] == "private"
    config = sandbox.config()
    assert {p["language_code"] for p in config["prospects"]} == {"en", "uk", "ru"}
    assert all(normalize_phone(p["phone"]) == p["phone"] for p in config["prospects"])

    added = sandbox.add_prospect("  Petro   Ivanenko ", "uk")
    assert added["first_name"] == "Petro Ivanenko" and added["id"] not in {
        p["id"] for p in config["prospects"]
    }
    assert normalize_phone(added["phone"]) == added["phone"]
    for language in ("en", "ru"):
        extra = sandbox.add_prospect("X", language)
        assert normalize_phone(extra["phone"]) == extra["phone"]
    assert [e["type"] for e in emulator.bus.since(0)].count("sandbox") == 3
    with pytest.raises(ControlError):
        sandbox.add_prospect("", "en")
    with pytest.raises(ControlError):
        sandbox.add_prospect("Hans", "de")
