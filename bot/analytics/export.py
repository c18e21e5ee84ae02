"""`/export`: the leads of a period as CSV (UTF-8 with BOM, so Excel reads the Cyrillic right) plus a
second CSV with their full stage history, and the same two tables as one XLSX workbook when the
period is small enough for a spreadsheet to be comfortable.

Rows are streamed from the database and written as they come (one pass feeds CSV and XLSX), so a
large export never holds all rows in memory.  Text cells that a spreadsheet would run as a formula
(starting with = + - @, a tab or a carriage return) get a leading apostrophe."""
from __future__ import annotations

import asyncio
import csv
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.analytics.periods import Period
from bot.db.models import Lead, LeadEvent
from funnel import Funnel

Texts = Callable[..., str]

DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_LEADS = 10_000  # a workbook is made up to this many leads ...
XLSX_MAX_HISTORY = 50_000  # ... and history rows (openpyxl writes ~10,000 rows a second)
TELEGRAM_LIMIT = 49 * 1024 * 1024  # bots may upload documents up to 50 MB
HISTORY_KINDS = ("created", "stage", "handoff", "assign")
BATCH = 2000

LEAD_COLUMNS = (
    "id", "created", "source", "name", "phone", "verified", "email", "username", "answers", "score", "band",
    "stage", "manager", "outcome", "lost_reason", "amount", "closed",
)
HISTORY_COLUMNS = ("lead", "at", "event", "from", "to", "actor", "reason")


def neutralize(value: Any) -> Any:
    """Make a text cell inert for spreadsheets (numbers pass unchanged)."""
    if isinstance(value, str) and value.startswith(DANGEROUS_PREFIXES):
        return "'" + value
    return value


@dataclass(frozen=True)
class ExportFile:
    path: Path
    rows: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class Export:
    files: tuple[ExportFile, ...]
    leads: int
    history: int
    xlsx_skipped: bool  # the period was too large for the workbook


def _slug(period: Period) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", period.label).strip("_") or "all"


def _local(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


class _Labels:
    """Funnel labels in one locale, looked up once per export."""

    def __init__(self, funnel: Funnel, locale: str, t: Texts) -> None:
        self.stage = {s.key: funnel.label(s.title, locale) for s in funnel.stages}
        self.band = {b.key: funnel.label(b.title, locale) for b in funnel.scoring.bands}
        self.reason = {r.key: funnel.label(r.label, locale) for r in funnel.lost_reasons}
        self.step = {s.key: funnel.label(s.title, locale) for s in funnel.steps}
        self.option = {(s.key, o.key): funnel.label(o.label, locale) for s in funnel.steps for o in s.options}
        self.outcome = {"won": t("export-outcome-won"), "lost": t("export-outcome-lost")}
        self.event = {k: t(f"export-event-{k}") for k in HISTORY_KINDS}
        self.yes, self.no = t("export-yes"), t("export-no")
        self.system = t("export-system")

    def answers(self, answers: dict[str, Any] | None) -> str:
        parts = []
        for key, value in (answers or {}).items():
            if key not in self.step or value in (None, ""):
                continue
            parts.append(f"{self.step[key]}: {self.option.get((key, str(value)), value)}")
        return "; ".join(parts)


class _Sink:
    """One CSV file and, optionally, one sheet of the workbook."""

    def __init__(self, path: Path, header: Sequence[str], sheet: Any | None) -> None:
        self.path = path
        self.file = path.open("w", encoding="utf-8-sig", newline="")
        self.csv = csv.writer(self.file)
        self.sheet = sheet
        self.rows = 0
        self.csv.writerow([neutralize(h) for h in header])
        if sheet is not None:
            sheet.append(_xlsx_row(sheet, header))

    def write(self, row: Sequence[Any]) -> None:
        safe = [neutralize(v) for v in row]
        self.csv.writerow(["" if v is None else v for v in safe])
        if self.sheet is not None:
            self.sheet.append(_xlsx_row(self.sheet, safe))
        self.rows += 1

    def write_many(self, rows: Sequence[Any], convert: Callable[[Any], Sequence[Any]]) -> None:
        for row in rows:
            self.write(convert(row))

    def close(self) -> None:
        self.file.close()


def _xlsx_row(sheet: Any, values: Sequence[Any]) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell

    row = []
    for value in values:
        if isinstance(value, Decimal):
            value = float(value)
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever the text starts with
        row.append(cell)
    return row


async def _partitions(session: AsyncSession, stmt: Any) -> AsyncIterator[Sequence[Any]]:
    result = await session.stream(stmt.execution_options(yield_per=BATCH))
    async for partition in result.partitions(BATCH):
        yield partition


async def _write(session: AsyncSession, stmt: Any, sink: _Sink, convert: Callable[[Any], Sequence[Any]]) -> None:
    """Stream the rows and write each batch in a worker thread: formatting a large export must not
    stall the event loop (and with it every other chat)."""
    try:
        async for partition in _partitions(session, stmt):
            await asyncio.to_thread(sink.write_many, partition, convert)
    finally:
        sink.close()


async def export_period(
    session: AsyncSession, funnel: Funnel, period: Period, tz: tzinfo, locale: str, t: Texts,
    directory: Path, *, xlsx: bool = True,
) -> Export:
    """Write leads.csv, stage-history.csv (and leads.xlsx) for the leads created in the period."""
    labels = _Labels(funnel, locale, t)
    slug = _slug(period)
    where = []
    if period.start is not None:
        where.append(Lead.created_at >= period.start)
    if period.end is not None:
        where.append(Lead.created_at < period.end)

    ev = LeadEvent
    history_where = [ev.kind.in_(HISTORY_KINDS), *where]
    workbook = None
    lead_sheet = history_sheet = None
    if xlsx:
        count = await session.scalar(select(func.count()).select_from(Lead).where(*where))
        events = await session.scalar(
            select(func.count()).select_from(ev).join(Lead, Lead.id == ev.lead_id).where(*history_where))
        if count and count <= XLSX_MAX_LEADS and (events or 0) <= XLSX_MAX_HISTORY:
            from openpyxl import Workbook

            workbook = Workbook(write_only=True)
            lead_sheet = workbook.create_sheet(t("export-sheet-leads"))
            history_sheet = workbook.create_sheet(t("export-sheet-history"))
    xlsx_skipped = xlsx and workbook is None

    def lead_row(r: Any) -> Sequence[Any]:
        return (
            r.id, _local(r.created_at, tz), r.source, r.name, r.phone,
            (labels.yes if r.phone_verified else labels.no) if r.phone else "", r.email,
            r.username or "", labels.answers(r.answers), r.score,
            labels.band.get(r.band or "", r.band or ""), labels.stage.get(r.stage, r.stage),
            r.manager_name or (str(r.manager_id) if r.manager_id else ""),
            labels.outcome.get(r.outcome or "", ""), labels.reason.get(r.lost_reason or "", r.lost_reason or ""),
            r.amount, _local(r.closed_at, tz),
        )

    def history_row(r: Any) -> Sequence[Any]:
        return (
            r.lead_id, _local(r.created_at, tz), labels.event.get(r.kind, r.kind),
            labels.stage.get(r.from_stage or "", r.from_stage or ""),
            labels.stage.get(r.to_stage or "", r.to_stage or ""),
            r.actor_name or (str(r.actor_id) if r.actor_id else labels.system),
            labels.reason.get(r.reason or "", r.reason or ""),
        )

    leads = _Sink(directory / f"leads_{slug}.csv", [t(f"export-col-{c}") for c in LEAD_COLUMNS], lead_sheet)
    await _write(session, select(
        Lead.id, Lead.created_at, Lead.source, Lead.name, Lead.phone, Lead.phone_verified, Lead.email,
        Lead.username, Lead.answers, Lead.score, Lead.band, Lead.stage, Lead.manager_name, Lead.manager_id,
        Lead.outcome, Lead.lost_reason, Lead.amount, Lead.closed_at,
    ).where(*where).order_by(Lead.id), leads, lead_row)
    history = _Sink(directory / f"stage_history_{slug}.csv", [t(f"export-col-h-{c}") for c in HISTORY_COLUMNS],
                    history_sheet)
    await _write(session, (
        select(ev.lead_id, ev.created_at, ev.kind, ev.from_stage, ev.to_stage, ev.actor_name, ev.actor_id, ev.reason)
        .join(Lead, Lead.id == ev.lead_id).where(*history_where).order_by(ev.lead_id, ev.id)
    ), history, history_row)

    files = [ExportFile(leads.path, leads.rows), ExportFile(history.path, history.rows)]
    if workbook is not None:
        path = directory / f"leads_{slug}.xlsx"
        await asyncio.to_thread(workbook.save, path)
        files.append(ExportFile(path, leads.rows))
    return Export(tuple(files), leads.rows, history.rows, xlsx_skipped)


def fit_for_telegram(export: Export, limit: int = TELEGRAM_LIMIT) -> tuple[ExportFile, ...] | None:
    """The files to send: as they are when each fits, else zipped together; None when even the zip
    is over the limit (the admin should pick a shorter period)."""
    if all(f.size <= limit for f in export.files):
        return export.files
    csvs = [f for f in export.files if f.path.suffix == ".csv"]
    target = csvs[0].path.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for item in csvs:
            archive.write(item.path, arcname=item.name)
    packed = ExportFile(target, export.leads)
    return (packed,) if packed.size <= limit else None
