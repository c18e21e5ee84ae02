"""Admin commands end to end: the real app (routers, middlewares, database) against the emulator."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.analytics import digest
from bot.commands import set_commands
from bot.db.models import OutboxMessage, Prospect, utcnow
from tests.analytics.conftest import ADMIN, STAFF_CHAT, add_lead, add_run, person, utc

BOSS = person(ADMIN, "Boss")
BOSS_UK = person(ADMIN + 1, "Шеф", language_code="uk")
STRANGER = person(5005, "Eve")
COMMANDS = ["/stats", "/sources", "/managers", "/dropoff", "/funnel", "/trend", "/export",
            "/stats all", "/export 2026-10"]


async def seed(app) -> None:
    now = utcnow()
    async with app.session_factory() as s:
        for i in range(5):
            await add_lead(s, now - timedelta(days=2, minutes=i), ["new", "qualified"], source="ads_fb",
                           name=f"Client {i}", phone="+380501234567")
        await add_lead(s, now - timedelta(days=1), ["new", "qualified", "contacted", "proposal", "won"],
                       source="referral", name="=HYPERLINK(\"http://x\")", amount=Decimal(1200),
                       manager=(701, "Max"), handed=now - timedelta(days=1), assigned=now - timedelta(hours=20))
        await add_lead(s, now - timedelta(days=1), ["new", "qualified", "lost"], reason="competitor",
                       name="@mallory", manager=(701, "Max"))
        await add_run(s, now - timedelta(days=1), 3, "email")
        await s.commit()


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_non_admin_gets_a_refusal_and_no_data(app, feed, command):
    await seed(app)
    replies = await feed.message(STRANGER, command)
    assert len(replies) == 1
    assert replies[0]["text"] == "⛔ This command is for administrators only."
    assert "photo" not in replies[0] and "document" not in replies[0]


async def test_stats_for_an_admin(app, feed):
    await seed(app)
    (reply,) = await feed.message(BOSS, "/stats 7d")
    text = reply["text"]
    assert "Funnel" in text and "Leads created: 7" in text
    assert "Qualified: 7 · 100.0% of the previous step" in text
    assert "Contacted: 1 · 14.3% of the previous step · 14.3% of all" in text
    assert "Overall conversion to Won: 14.3%" in text
    assert "Biggest leak: Qualified → Contacted: −6 (85.7%)" in text
    assert "Chose a competitor: 1 (100.0%)" in text
    assert "Expected deals: <b>1</b> of 5 open leads" in _html(reply)


async def test_stats_speaks_the_admins_language(app, feed):
    await seed(app)
    (reply,) = await feed.message(BOSS_UK, "/stats")
    assert "Воронка" in reply["text"] and "Нових заявок: 7" in reply["text"]


async def test_a_malformed_period_shows_the_right_form(app, feed):
    (reply,) = await feed.message(BOSS, "/stats last-week")
    assert "last-week" in reply["text"] and "2026-10-01..2026-10-31" in reply["text"]


async def test_sources_managers_dropoff(app, feed):
    await seed(app)
    (sources,) = await feed.message(BOSS, "/sources 30d")
    assert "<b>ads_fb</b>: leads 5 → won 0 (0.0%) · lost 0" in _html(sources)
    assert "<b>referral</b>: leads 1 → won 1 (100.0%) · lost 0" in _html(sources)
    assert "1 → 1 (100.0%) → 1 (100.0%) → 1 (100.0%) → 0 (0.0%) → 1 (—)" in sources["text"]  # skipped a stage
    (managers,) = await feed.message(BOSS, "/managers 30d")
    assert "taken 2 · won 1 · lost 1 · win rate 50.0%" in managers["text"]
    assert "handoff → Take: 4 h" in managers["text"]
    (drop,) = await feed.message(BOSS, "/dropoff 30d")
    assert "Started: 1" in drop["text"] and "Phone: reached 1" in drop["text"]


async def test_funnel_and_trend_send_png_photos(app, feed):
    await seed(app)
    for command in ("/funnel 30d", "/trend 30d", "/trend all", "/funnel 2020-01"):
        (reply,) = await feed.message(BOSS, command)
        assert "photo" in reply, command
        data = feed.file(reply["photo"][-1]["file_id"])
        assert data.startswith(b"\x89PNG"), command
        assert reply["caption"]


async def test_export_sends_csv_xlsx_and_history(app, feed):
    await seed(app)
    replies = await feed.message(BOSS, "/export 30d")
    names = [r["document"]["file_name"] for r in replies]
    assert len(names) == 3
    assert names[0].startswith("leads_") and names[0].endswith(".csv")
    assert names[1].startswith("stage_history_") and names[2].endswith(".xlsx")
    leads = feed.file(replies[0]["document"]["file_id"])
    assert leads.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(leads.decode("utf-8-sig"))))
    assert rows[0][:3] == ["ID", "Created", "Source"] and len(rows) == 8
    cells = {cell for row in rows for cell in row}
    assert "'=HYPERLINK(\"http://x\")" in cells and "'@mallory" in cells
    assert not any(c.startswith(("=", "@", "+", "-")) for c in cells if c)
    history = feed.file(replies[1]["document"]["file_id"]).decode("utf-8-sig")
    assert history.count("\n") >= 1
    assert feed.file(replies[2]["document"]["file_id"]).startswith(b"PK")


async def test_export_of_an_empty_period(app, feed):
    (reply,) = await feed.message(BOSS, "/export 2020-01")
    assert reply["text"] == "No leads were created in this period."


async def test_digest_is_queued_once_per_admin_per_day(app):
    await seed(app)
    async with app.session_factory() as s:
        s.add(Prospect(tg_id=ADMIN + 1, chat_id=ADMIN + 1, locale="uk"))
        await s.commit()
    before = utc(2026, 11, 23, 6, 59)  # 08:59 in Kyiv: too early
    assert await digest.run_digest_once(app, before) == 0
    at_nine = utc(2026, 11, 23, 7, 0)
    assert await digest.run_digest_once(app, at_nine) == 2
    assert await digest.run_digest_once(app, at_nine + timedelta(hours=3)) == 0  # a restart: not again
    async with app.session_factory() as s:
        rows = (await s.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "digest")
                                .order_by(OutboxMessage.chat_id))).all()
    assert [(r.chat_id, r.dedupe_key) for r in rows] == [
        (ADMIN, f"digest:2026-11-23:{ADMIN}"), (ADMIN + 1, f"digest:2026-11-23:{ADMIN + 1}")]
    assert "Daily digest" in rows[0].payload["text"] and "2026-11-22" in rows[0].payload["text"]
    assert "Щоденний підсумок" in rows[1].payload["text"]
    assert await digest.run_digest_once(app, utc(2026, 11, 24, 7, 0)) == 2  # the next day


async def test_weekly_digest_only_on_mondays(app):
    app.settings.digest = "weekly"
    assert await digest.run_digest_once(app, utc(2026, 11, 24, 8)) == 0  # a Tuesday
    assert await digest.run_digest_once(app, utc(2026, 11, 23, 8)) == 2  # a Monday
    async with app.session_factory() as s:
        row = await s.scalar(select(OutboxMessage).where(OutboxMessage.chat_id == ADMIN))
    assert "Weekly digest" in row.payload["text"] and "2026-11-16 – 2026-11-22" in row.payload["text"]
    app.settings.digest = "off"
    assert await digest.run_digest_once(app, utc(2026, 11, 30, 8)) == 0


async def test_digest_task_starts_and_stops(app):
    task = digest.start(app)
    assert digest.start(app) is task
    await digest.stop()
    assert task.done()


async def test_command_menus_per_role_and_language(app, emulator):
    done = await set_commands(app)
    menus = {(json_scope(m["scope"]), m["language_code"]): [c["command"] for c in m["commands"]]
             for m in emulator.commands()}
    assert done == len(menus) == 4 * 4  # (default, staff, 2 admins) x (no language, en, ru, uk)
    assert menus[("default", "")] == ["start", "help", "manager", "language", "mydata", "forget", "cancel",
                                      "restart"]
    assert menus[(f"chat:{STAFF_CHAT}", "uk")] == ["lead", "mine", "note", "amount", "help"]
    assert menus[(f"chat:{ADMIN}", "ru")][:7] == ["stats", "sources", "managers", "dropoff", "funnel", "trend",
                                                 "export"]
    uk = {m["language_code"]: m for m in emulator.commands() if m["scope"] == {"type": "default"}}["uk"]
    assert uk["commands"][0]["description"] == "Почати або оновити заявку"


async def test_command_menu_failures_do_not_stop_the_start(app, emulator, caplog):
    emulator.add_faults([{"method": "setMyCommands", "error_code": 400, "description": "Bad Request: boom",
                          "count": 0}])
    assert await set_commands(app) == 0
    assert "setMyCommands failed" in caplog.text


def json_scope(scope: dict) -> str:
    return "default" if scope["type"] == "default" else f"chat:{scope['chat_id']}"


def _html(message: dict) -> str:
    """Re-insert <b> around bold entities (offsets in UTF-16 units) to read the HTML the bot sent."""
    text = message["text"].encode("utf-16-le")
    for entity in sorted(message.get("entities", []), key=lambda e: -e["offset"]):
        if entity["type"] == "bold":
            start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
            text = text[:start] + "<b>".encode("utf-16-le") + text[start:end] + "</b>".encode("utf-16-le") + text[end:]
    return text.decode("utf-16-le")
