"""/export files: BOM, columns, formula neutralisation, the stage history, the XLSX workbook."""
from __future__ import annotations

import csv
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from bot.analytics import export as exp
from bot.analytics.periods import parse_period
from bot.db.models import LeadEvent
from bot.i18n import Translator
from tests.analytics.conftest import add_lead, utc

KYIV = ZoneInfo("Europe/Kyiv")
OCTOBER = parse_period("2026-10", KYIV, utc(2026, 11, 5))


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+380501234567", "'+380501234567"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), ("a=b", "a=b"), ("", ""), (5, 5), (-5, -5),
    (Decimal("-1.5"), Decimal("-1.5")), (None, None),
])
def test_neutralize(value, expected):
    assert exp.neutralize(value) == expected


async def write(db, funnel, *, xlsx=True, tmp_path, locale="en"):
    async with db.session() as s:
        lead = await add_lead(
            s, utc(2026, 10, 10, 9, 30), ["new", "qualified", "contacted", "lost"], source="=cmd|'/c calc'!A0",
            reason="too_expensive", name="=HYPERLINK(\"http://evil\",\"x\")", phone="+380501234567",
            phone_verified=True, email="@ann@example.com", username="ann", score=72, band="hot",
            answers={"need": "product", "budget": "5k_20k", "comment": "-rm -rf"}, amount=Decimal("1500.50"),
            manager=(701, "Max"),
        )
        await add_lead(s, utc(2026, 9, 30, 20), ["new"], name="September")  # 23:00 Sep 30 in Kyiv: outside
        for kind, frm, to, actor in (("created", None, "new", None), ("stage", "new", "qualified", None),
                                     ("handoff", None, None, None), ("assign", None, None, "Max"),
                                     ("stage", "qualified", "contacted", "Max"), ("note", None, None, "Max"),
                                     ("stage", "contacted", "lost", "Max")):
            s.add(LeadEvent(lead_id=lead.id, kind=kind, from_stage=frm, to_stage=to, actor_name=actor,
                            actor_id=701 if actor else None, reason="too_expensive" if to == "lost" else None,
                            text="=secret" if kind == "note" else None, created_at=utc(2026, 10, 10, 10)))
        await s.commit()
    t = Translator("en").for_locale(locale)
    async with db.session() as s:
        return await exp.export_period(s, funnel, OCTOBER, KYIV, locale, t, tmp_path, xlsx=xlsx)


async def test_csv_has_a_bom_the_columns_and_no_live_formulas(db, funnel, tmp_path):
    result = await write(db, funnel, tmp_path=tmp_path)
    assert result.leads == 1 and result.history == 6 and not result.xlsx_skipped
    leads = result.files[0]
    raw = leads.path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["ID", "Created", "Source", "Name", "Phone", "Phone verified", "Email", "Username",
                       "Answers", "Score", "Band", "Stage", "Manager", "Won/lost", "Lost reason", "Amount", "Closed"]
    (row,) = rows[1:]
    assert row[1] == "2026-10-10 12:30:00"  # local time in Kyiv
    assert row[2] == "'=cmd|'/c calc'!A0"
    assert row[3] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert row[4] == "'+380501234567" and row[5] == "yes" and row[6] == "'@ann@example.com"
    assert row[7] == "ann"
    need, budget = funnel.step("need"), funnel.step("budget")
    assert row[8] == (f"{need.title['en']}: {need.option('product').label['en']}; "
                      f"{budget.title['en']}: {budget.option('5k_20k').label['en']}; "
                      f"{funnel.step('comment').title['en']}: -rm -rf")
    assert row[9:] == ["72", "Hot", "Lost", "Max", "lost", "Too expensive", "1500.50", ""]
    for cell in (c for r in rows for c in r):
        assert not cell.startswith(exp.DANGEROUS_PREFIXES), cell


async def test_the_history_file_has_every_stage_event_and_no_free_text(db, funnel, tmp_path):
    result = await write(db, funnel, tmp_path=tmp_path)
    raw = result.files[1].path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["Lead ID", "Time", "Event", "From stage", "To stage", "By", "Reason"]
    assert [r[2:6] for r in rows[1:]] == [
        ["created", "", "New", "system"], ["stage change", "New", "Qualified", "system"],
        ["handed to managers", "", "", "system"], ["taken by a manager", "", "", "Max"],
        ["stage change", "Qualified", "Contacted", "Max"], ["stage change", "Contacted", "Lost", "Max"],
    ]
    assert rows[-1][6] == "Too expensive"
    assert "secret" not in raw.decode("utf-8-sig")


async def test_xlsx_cells_are_text_never_formulas(db, funnel, tmp_path):
    result = await write(db, funnel, tmp_path=tmp_path)
    book = load_workbook(result.files[2].path)
    assert book.sheetnames == ["Leads", "Stage history"]
    sheet = book["Leads"]
    header = [c.value for c in sheet[1]]
    assert header[0] == "ID" and len(header) == 17
    data = list(sheet[2])
    assert data[0].value == 1 and isinstance(data[9].value, int)
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert data[3].value == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert book["Stage history"].max_row == 7


async def test_localized_headers_and_big_periods_skip_xlsx(db, funnel, tmp_path, monkeypatch):
    monkeypatch.setattr(exp, "XLSX_MAX_LEADS", 0)
    result = await write(db, funnel, tmp_path=tmp_path, locale="uk")
    assert result.xlsx_skipped and len(result.files) == 2
    header = result.files[0].path.read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("ID,Створено,Джерело,Ім'я,Телефон")


def test_too_large_files_are_zipped_or_refused(tmp_path):
    files = []
    for name in ("leads_x.csv", "stage_history_x.csv"):
        path = tmp_path / name
        path.write_text("1,2026-10-10 12:30:00,direct,Ann\n" * 5000, encoding="utf-8-sig")
        files.append(exp.ExportFile(path, 5000))
    result = exp.Export(tuple(files), 5000, 5000, False)
    assert exp.fit_for_telegram(result) == result.files
    packed = exp.fit_for_telegram(result, limit=100_000)
    assert packed is not None and len(packed) == 1 and packed[0].path.suffix == ".zip"
    assert packed[0].size < 100_000
    assert exp.fit_for_telegram(result, limit=100) is None
