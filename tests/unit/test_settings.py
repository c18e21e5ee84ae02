import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings, describe_error, parse_id_list

TOKEN = "123456:" + "A" * 35


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("111,222", [111, 222]), ("[111, 222]", [111, 222]), ("", []), ("7", [7]), ("1; 2 3", [1, 2, 3]), (5, [5])],
)
def test_id_lists_accept_both_forms(raw, expected):
    assert parse_id_list(raw) == expected


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ADMIN_IDS", "[1, 2]")
    monkeypatch.setenv("MANAGER_IDS", "3,4")
    monkeypatch.setenv("STAFF_CHAT_ID", "-100123")
    settings = Settings()
    assert settings.admin_ids == [1, 2] and settings.manager_ids == [3, 4]
    assert settings.staff_chat_id == -100123
    assert settings.database_url == "sqlite+aiosqlite:///data/leadbot.db"
    assert settings.default_locale == "en"


@pytest.mark.parametrize("token", ["", "abc", "123:short", "notdigits:" + "A" * 35])
def test_malformed_token_is_named(monkeypatch, tmp_path, token):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", token)
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert describe_error(exc.value).startswith("configuration error: BOT_TOKEN:")


def test_bad_timezone_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "TIMEZONE" in describe_error(exc.value)


@pytest.mark.parametrize("token", [None, "garbage"])
def test_process_exits_with_one_line_naming_the_variable(tmp_path, token):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if token is not None:
        env["BOT_TOKEN"] = token
    proc = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "BOT_TOKEN" in lines[0] and "Traceback" not in proc.stderr


def test_a_bad_funnel_file_stops_start_up_with_one_line_naming_the_field(tmp_path):
    bad = tmp_path / "funnel.toml"
    source = (Path(__file__).resolve().parents[2] / "funnel" / "files" / "default.toml").read_text()
    bad.write_text(source.replace("probability = 50", "probability = 150", 1))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BOT_TOKEN": TOKEN, "FUNNEL_FILE": str(bad),
           "TELEGRAM_API_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "FUNNEL_FILE" in lines[0] and "probability" in lines[0] and "150" in lines[0]
