"""Summary tables that keep `/stats` and `/sources` fast on millions of history rows.

Both are keyed by the UTC calendar day of the lead's creation (the same key `stage_reached` carries as
`lead_created_at`), so any period is answered exactly as *whole UTC days from the summary* plus *the
partial days at the edges from `stage_reached`* (local midnights rarely fall on UTC midnight).

* `analytics_reached_daily`: how many leads created that day reached each stage, per source (and, for
  lost stages, per lost reason).  +1 when a `stage_reached` row is created.
* `analytics_stay_daily`: a histogram of how long leads stayed in each stage (first stay, the
  `left_at - reached_at` of `stage_reached`), in geometric buckets 20 % wide.  Used for the median
  when a period has too many stays to fetch them all.

They are kept in step by `track_stage_change()` (called from `bot.services.leads.mark_reached`) and can
be rebuilt from `stage_reached` at any time with `rebuild()`; `ensure_summary()` rebuilds once when
the marker in `kv` is missing (first start after an upgrade)."""
from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, Integer, String, bindparam, case, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Float

from bot.db.models import Base, KeyValue, Lead, StageReached

log = logging.getLogger(__name__)

MARKER_KEY = "analytics_summary"
SUMMARY_VERSION = 2
BUCKET_RATIO = 1.2
BUCKET_COUNT = 110  # 1.2 ** 108 s is far beyond any real stay


def bucket_low(index: int) -> float:
    """Lower bound (seconds) of a stay bucket: 0 holds [0, 1), k >= 1 holds [1.2^(k-1), 1.2^k)."""
    return 0.0 if index <= 0 else BUCKET_RATIO ** (index - 1)


def bucket_high(index: int) -> float:
    return BUCKET_RATIO ** index if index > 0 else 1.0


BOUNDS: tuple[float, ...] = tuple(bucket_high(k) for k in range(BUCKET_COUNT - 1))


def bucket_of(seconds: float) -> int:
    if seconds < 1:
        return 0
    index = math.floor(math.log(seconds) / math.log(BUCKET_RATIO)) + 1
    # floating point can put an exact bound one bucket off; settle it against BOUNDS
    while index > 0 and seconds < bucket_low(index):
        index -= 1
    while index < BUCKET_COUNT - 1 and seconds >= bucket_high(index):
        index += 1
    return min(index, BUCKET_COUNT - 1)


class ReachedDaily(Base):
    __tablename__ = "analytics_reached_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)  # UTC day of the lead's creation
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True, default="")  # lost reason, else ""
    reached: Mapped[int] = mapped_column(Integer, default=0)


class StayDaily(Base):
    __tablename__ = "analytics_stay_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stays: Mapped[int] = mapped_column(Integer, default=0)


class ReachedMonthly(Base):
    """The same as ReachedDaily rolled up by UTC month (`day` = the 1st): long periods read ~30x fewer rows."""

    __tablename__ = "analytics_reached_monthly"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    reached: Mapped[int] = mapped_column(Integer, default=0)


class StayMonthly(Base):
    __tablename__ = "analytics_stay_monthly"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stays: Mapped[int] = mapped_column(Integer, default=0)


# ------------------------------------------------------------------ portable SQL helpers


class utc_day(FunctionElement[date]):
    """The calendar day of a naive-UTC timestamp column."""

    type = Date()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


class month_start(FunctionElement[date]):
    """The first day of the month of a DATE column."""

    type = Date()
    inherit_cache = True


@compiles(month_start)
def _month_start_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST(date_trunc('month', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(month_start, "sqlite")
def _month_start_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"


class seconds_between(FunctionElement[float]):
    """`later - earlier` in seconds (float) for two timestamp columns."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between)
def _seconds_default(element: Any, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - "
            f"{compiler.process(earlier, **kw)}))")


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (f"((julianday({compiler.process(later, **kw)}) - "
            f"julianday({compiler.process(earlier, **kw)})) * 86400.0)")


def bucket_expr(seconds: ColumnElement[float]) -> ColumnElement[int]:
    """The stay bucket of a duration, in SQL (a CASE over the fixed bounds)."""
    return case(*[(seconds < bound, index) for index, bound in enumerate(BOUNDS)], else_=BUCKET_COUNT - 1)


def lost_reason_expr() -> ColumnElement[str]:
    """'' except on the row of the lead's final lost stage, where it is the lead's lost reason."""
    return case(
        ((Lead.outcome == "lost") & (Lead.stage == StageReached.stage), func.coalesce(Lead.lost_reason, "")),
        else_=literal(""),
    )


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert_add(session: AsyncSession, table: Any, keys: dict[str, Any], column: str, amount: int) -> Any:
    """`INSERT ... ON CONFLICT (keys) DO UPDATE SET column = column + amount`, built once per dialect and
    table (building it was most of the cost of a stage change); returns it with its parameters."""
    name = session.get_bind().dialect.name
    stmt = _UPSERTS.get((name, table.name))
    if stmt is None:
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(table).values({key: bindparam(f"v_{key}") for key in keys} | {
            column: bindparam("amount", type_=Integer)})
        stmt = _UPSERTS[(name, table.name)] = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={column: getattr(table.c, column) + bindparam("amount", type_=Integer)})
    return stmt, {f"v_{key}": value for key, value in keys.items()} | {"amount": amount}


# ------------------------------------------------------------------ maintenance


async def track_stage_change(
    session: AsyncSession, lead: Lead, *, entered: StageReached | None = None, left: StageReached | None = None,
) -> None:
    """Keep the summaries in step with `stage_reached`: call it from `mark_reached` with the row it just
    added (`entered`) and the row whose `left_at` it just set (`left`)."""
    created = lead.created_at
    if entered is not None:
        day = (entered.lead_created_at or created).astimezone(UTC).date()
        reason = (lead.lost_reason or "") if lead.outcome == "lost" and lead.stage == entered.stage else ""
        keys = {"source": entered.source or lead.source, "stage": entered.stage, "reason": reason}
        for table, key in ((ReachedDaily, day), (ReachedMonthly, day.replace(day=1))):
            await session.execute(*_upsert_add(session, table.__table__, {"day": key, **keys}, "reached", 1))
    if left is not None and left.left_at is not None and left.reached_at is not None:
        day = (left.lead_created_at or created).astimezone(UTC).date()
        seconds = max(0.0, (left.left_at - left.reached_at).total_seconds())
        keys = {"stage": left.stage, "bucket": bucket_of(seconds)}
        for table, key in ((StayDaily, day), (StayMonthly, day.replace(day=1))):
            await session.execute(*_upsert_add(session, table.__table__, {"day": key, **keys}, "stays", 1))


async def rebuild(session: AsyncSession, first: date | None = None, end: date | None = None) -> None:
    """Recompute the summaries from `stage_reached` (INSERT ... SELECT, portable).

    Without bounds everything is rebuilt and the marker set; with `first`/`end` (UTC days, whole
    months) only that window, so a large database can be rebuilt in short transactions."""
    sr = StageReached
    day = utc_day(sr.lead_created_at).label("day")
    window = []
    if first is not None:
        window.append(sr.lead_created_at >= datetime.combine(first, datetime.min.time(), tzinfo=UTC))
    if end is not None:
        window.append(sr.lead_created_at < datetime.combine(end, datetime.min.time(), tzinfo=UTC))
    for table in (ReachedDaily, StayDaily, ReachedMonthly, StayMonthly):
        clauses = []
        if first is not None:
            clauses.append(table.day >= first)
        if end is not None:
            clauses.append(table.day < end)
        await session.execute(delete(table).where(*clauses))
    reason = lost_reason_expr().label("reason")
    reached = (
        select(day, sr.source, sr.stage, reason, func.count().label("reached"))
        .select_from(sr).join(Lead, Lead.id == sr.lead_id).where(*window)
        .group_by(day, sr.source, sr.stage, reason)
    )
    await session.execute(insert(ReachedDaily).from_select(["day", "source", "stage", "reason", "reached"], reached))
    bucket = bucket_expr(seconds_between(sr.left_at, sr.reached_at)).label("bucket")
    stays = (
        select(day, sr.stage, bucket, func.count().label("stays"))
        .where(sr.left_at.is_not(None), *window).group_by(day, sr.stage, bucket)
    )
    await session.execute(insert(StayDaily).from_select(["day", "stage", "bucket", "stays"], stays))
    for daily, monthly, columns, value in (
        (ReachedDaily, ReachedMonthly, ("source", "stage", "reason"), "reached"),
        (StayDaily, StayMonthly, ("stage", "bucket"), "stays"),
    ):
        month = month_start(daily.day).label("day")
        keys = [getattr(daily, c) for c in columns]
        clauses = []
        if first is not None:
            clauses.append(daily.day >= first)
        if end is not None:
            clauses.append(daily.day < end)
        rollup = (select(month, *keys, func.sum(getattr(daily, value))).where(*clauses)
                  .group_by(month, *keys))
        await session.execute(insert(monthly).from_select(["day", *columns, value], rollup))
    if first is None and end is None:
        await _set_marker(session)


async def _set_marker(session: AsyncSession) -> None:
    await session.merge(KeyValue(key=MARKER_KEY, value={"version": SUMMARY_VERSION,
                                                        "built_at": datetime.now(UTC).isoformat()}))


async def summary_ready(session: AsyncSession) -> bool:
    row = await session.get(KeyValue, MARKER_KEY)
    return row is not None and row.value.get("version") == SUMMARY_VERSION


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


async def ensure_summary(session_factory: async_sessionmaker[AsyncSession], months_per_step: int = 3) -> bool:
    """Build the summaries once if they were never built (or by another version), a few months per
    transaction so a big SQLite database is not locked for long.  Returns True when it built them.

    The tracking hook must already be active (it is called from `mark_reached`): rows added while a
    window is being rebuilt are then counted exactly once."""
    async with session_factory() as session:
        if await summary_ready(session):
            return False
        bounds = (await session.execute(
            select(func.min(StageReached.lead_created_at), func.max(StageReached.lead_created_at)))).one()
    log.info("building the analytics summary tables from stage_reached")
    if bounds[0] is not None:
        low = bounds[0].astimezone(UTC).date().replace(day=1)
        high = bounds[1].astimezone(UTC).date()
        first = low
        while first <= high:
            end = first
            for _ in range(months_per_step):
                end = _next_month(end)
            async with session_factory() as session:
                await rebuild(session, first, end)
                await session.commit()
            first = end
    async with session_factory() as session:
        # a lead created after the scan started lands after `high`: its rows came through the hook
        await _set_marker(session)
        await session.commit()
    return True


__all__ = [
    "BOUNDS", "BUCKET_COUNT", "MARKER_KEY", "ReachedDaily", "ReachedMonthly", "StayDaily", "StayMonthly", "bucket_expr", "bucket_high",
    "bucket_low", "bucket_of", "ensure_summary", "lost_reason_expr", "month_start", "rebuild", "seconds_between",
    "summary_ready", "track_stage_change", "utc_day",
]
