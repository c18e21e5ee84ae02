"""Analytics queries (SQLAlchemy Core; the same statements run on SQLite and PostgreSQL).

Every report is about **the leads created in the period** (`Lead.created_at` /
`StageReached.lead_created_at`).  "Reached" comes from `stage_reached` (one row per lead per stage it
ever reached).  Whole UTC days are read from the daily summary tables (`bot.analytics.models`), the
partial days at the period's edges from `stage_reached` itself, so every count is exact.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.analytics.models import (
    ReachedDaily,
    ReachedMonthly,
    StayDaily,
    StayMonthly,
    bucket_high,
    bucket_low,
    bucket_of,
    lost_reason_expr,
    seconds_between,
    summary_ready,
)
from bot.analytics.periods import Period, local_midnight
from bot.db.models import DialogueRun, Lead, StageReached
from funnel import Funnel, Stage
from funnel.conversion import (
    ConversionTable,
    conversion_table,
    histogram_median,
    median,
    percent,
    weighted_pipeline,
)

#: When the period holds at most this many `stage_reached` rows (all stages), medians are exact (every
#: duration is read); above it they are interpolated from the 20 %-wide histogram buckets of the
#: summary (shown with "≈").  Reading 40,000 rows costs about 60 ms on SQLite.
EXACT_MEDIAN_ROWS = 40_000

# ------------------------------------------------------------------ the funnel's shape


@dataclass(frozen=True)
class Shape:
    """Which stages form the conversion chain and which are reported beside it."""

    chain: tuple[Stage, ...]  # active open stages in file order, then the won stage
    won: Stage | None
    lost: tuple[Stage, ...]  # outcome "lost"
    side: tuple[Stage, ...]  # everything else (nurture, on hold, later won stages)
    open_active: tuple[Stage, ...]  # the weighted pipeline: active stages without an outcome

    @property
    def chain_keys(self) -> list[str]:
        return [s.key for s in self.chain]


def shape(funnel: Funnel) -> Shape:
    open_active = tuple(s for s in funnel.stages if s.active and not s.terminal and s.outcome is None)
    won = funnel.won_stage
    chain = open_active + ((won,) if won else ())
    lost = tuple(s for s in funnel.stages if s.outcome == "lost")
    keys = {s.key for s in chain + lost}
    side = tuple(s for s in funnel.stages if s.key not in keys)
    return Shape(chain, won, lost, side, open_active)


# ------------------------------------------------------------------ period plumbing


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True)
class Split:
    """A period as whole UTC months and whole UTC days (from the summaries) plus edge windows (from the
    raw rows).  Ranges are [first, end); None in a range means open."""

    months: tuple[date | None, date | None] | None
    days: tuple[tuple[date | None, date | None], ...]
    edges: tuple[tuple[datetime | None, datetime | None], ...]


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def split(period: Period, use_summary: bool) -> Split:
    start, end = period.start, period.end
    if not use_summary:
        return Split(None, (), ((start, end),))
    first = None if start is None else (
        start.date() if start == _utc_midnight(start.date()) else start.date() + timedelta(days=1))
    last = None if end is None else end.date()
    if first is not None and last is not None and first >= last:
        return Split(None, (), ((start, end),))
    edges = []
    if start is not None and first is not None and start < _utc_midnight(first):
        edges.append((start, _utc_midnight(first)))
    if end is not None and last is not None and _utc_midnight(last) < end:
        edges.append((_utc_midnight(last), end))
    # whole months inside [first, last)
    month_first = None if first is None else (first if first.day == 1 else _next_month(first))
    month_end = None if last is None else last.replace(day=1)
    if month_first is not None and month_end is not None and month_first >= month_end:
        return Split(None, ((first, last),), tuple(edges))
    days = []
    if first is not None and month_first is not None and first < month_first:
        days.append((first, month_first))
    if last is not None and month_end is not None and month_end < last:
        days.append((month_end, last))
    return Split((month_first, month_end), tuple(days), tuple(edges))


def _between(column: ColumnElement[datetime], start: datetime | None, end: datetime | None) -> list:
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return clauses


def _days(column: ColumnElement[date], days: tuple[date | None, date | None]) -> list:
    clauses = []
    if days[0] is not None:
        clauses.append(column >= days[0])
    if days[1] is not None:
        clauses.append(column < days[1])
    return clauses


# ------------------------------------------------------------------ reached counts


@dataclass
class Reached:
    """Leads created in the period that reached each stage, by source and by lost reason."""

    by_source: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    lost_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, source: str, stage: str, reason: str, count: int) -> None:
        self.by_source[source][stage] += int(count)
        if reason:
            self.lost_reasons[reason] += int(count)

    def stage(self, key: str, source: str | None = None) -> int:
        if source is not None:
            return self.by_source.get(source, {}).get(key, 0)
        return sum(stages.get(key, 0) for stages in self.by_source.values())


async def reached(session: AsyncSession, period: Period, *, use_summary: bool | None = None) -> Reached:
    if use_summary is None:
        use_summary = await summary_ready(session)
    parts = split(period, use_summary)
    out = Reached()
    ranges = [(ReachedMonthly, parts.months)] if parts.months else []
    ranges += [(ReachedDaily, days) for days in parts.days]
    for table, days in ranges:
        rows = await session.execute(
            select(table.source, table.stage, table.reason, func.sum(table.reached))
            .where(*_days(table.day, days)).group_by(table.source, table.stage, table.reason)
        )
        for source, stage, reason, count in rows:
            out.add(source, stage, reason, count)
    sr = StageReached
    reason = lost_reason_expr()
    for start, end in parts.edges:
        rows = await session.execute(
            select(sr.source, sr.stage, reason, func.count())
            .select_from(sr).join(Lead, Lead.id == sr.lead_id)
            .where(*_between(sr.lead_created_at, start, end)).group_by(sr.source, sr.stage, reason)
        )
        for source, stage, why, count in rows:
            out.add(source, stage, why, count)
    return out


# ------------------------------------------------------------------ time in stage


@dataclass(frozen=True)
class Median:
    seconds: float | None
    approximate: bool = False
    count: int = 0


async def stay_medians(
    session: AsyncSession, period: Period, stages: Sequence[str], rows_in_period: int,
    *, use_summary: bool | None = None,
) -> dict[str, Median]:
    """Median first stay (`left_at - reached_at`) in each stage, of the leads that left it.

    Exact when the period has at most EXACT_MEDIAN_ROWS history rows (or there is no summary),
    otherwise interpolated from the summary histogram."""
    if use_summary is None:
        use_summary = await summary_ready(session)
    sr = StageReached
    exact = list(stages) if not use_summary or rows_in_period <= EXACT_MEDIAN_ROWS else []
    approx = [s for s in stages if s not in exact]
    out: dict[str, Median] = {}
    if exact:
        values: dict[str, list[float]] = defaultdict(list)
        rows = await session.execute(
            select(sr.stage, seconds_between(sr.left_at, sr.reached_at))
            .where(sr.stage.in_(exact), sr.left_at.is_not(None),
                   *_between(sr.lead_created_at, period.start, period.end))
        )
        for stage, seconds in rows:
            values[stage].append(max(0.0, round(float(seconds), 3)))
        for stage in exact:
            out[stage] = Median(median(values[stage]), False, len(values[stage]))
    if approx:
        parts = split(period, True)
        hist: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        ranges = [(StayMonthly, parts.months)] if parts.months else []
        ranges += [(StayDaily, days) for days in parts.days]
        for table, days in ranges:
            rows = await session.execute(
                select(table.stage, table.bucket, func.sum(table.stays))
                .where(table.stage.in_(approx), *_days(table.day, days)).group_by(table.stage, table.bucket)
            )
            for stage, bucket, count in rows:
                hist[stage][int(bucket)] += int(count)
        for start, end in parts.edges:
            rows = await session.execute(
                select(sr.stage, seconds_between(sr.left_at, sr.reached_at))
                .where(sr.stage.in_(approx), sr.left_at.is_not(None), *_between(sr.lead_created_at, start, end))
            )
            for stage, seconds in rows:
                hist[stage][bucket_of(max(0.0, float(seconds)))] += 1
        for stage in approx:
            buckets = [(bucket_low(b), bucket_high(b), n) for b, n in sorted(hist[stage].items())]
            out[stage] = Median(histogram_median(buckets), True, sum(n for *_, n in buckets))
    return out


# ------------------------------------------------------------------ open pipeline


@dataclass(frozen=True)
class PipelineStage:
    stage: str
    probability: int
    open: int
    amount: Decimal  # sum of entered amounts
    with_amount: int  # how many of the open leads have an amount


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[PipelineStage, ...]
    expected_deals: Decimal  # sum of open leads x probability
    weighted_amount: Decimal  # sum of amount x probability (a lead without an amount counts 0)

    @property
    def open(self) -> int:
        return sum(s.open for s in self.stages)

    @property
    def with_amount(self) -> int:
        return sum(s.with_amount for s in self.stages)


async def pipeline(session: AsyncSession, funnel: Funnel, period: Period) -> Pipeline:
    stages = shape(funnel).open_active
    keys = [s.key for s in stages]
    found: dict[str, tuple[int, Decimal, int]] = {}
    if keys:
        rows = await session.execute(
            select(Lead.stage, func.count(), func.sum(Lead.amount), func.count(Lead.amount))
            .where(Lead.stage.in_(keys), *_between(Lead.created_at, period.start, period.end))
            .group_by(Lead.stage)
        )
        for stage, count, amount, with_amount in rows:
            found[stage] = (int(count), Decimal(amount or 0), int(with_amount))
    out = tuple(PipelineStage(s.key, s.probability, *found.get(s.key, (0, Decimal(0), 0))) for s in stages)
    return Pipeline(
        out,
        weighted_pipeline((s.open, s.probability) for s in out),
        weighted_pipeline((s.amount, s.probability) for s in out),
    )


# ------------------------------------------------------------------ /stats


@dataclass(frozen=True)
class Stats:
    period: Period
    table: ConversionTable
    side: tuple[tuple[str, int], ...]  # (stage, reached) beside the chain: nurture, ...
    lost: tuple[tuple[str, int], ...]
    lost_reasons: tuple[tuple[str, int], ...]  # most frequent first
    medians: dict[str, Median]
    pipeline: Pipeline

    @property
    def total(self) -> int:
        return self.table.total

    @property
    def won(self) -> int:
        return self.table.rows[-1].reached if self.table.rows else 0

    @property
    def lost_total(self) -> int:
        return sum(n for _, n in self.lost)


def _reasons(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0])))


async def stats(session: AsyncSession, funnel: Funnel, period: Period, *, use_summary: bool | None = None
                ) -> Stats:
    if use_summary is None:
        use_summary = await summary_ready(session)
    form = shape(funnel)
    counts = await reached(session, period, use_summary=use_summary)
    chain = [(s.key, counts.stage(s.key)) for s in form.chain]
    timed = [s.key for s in form.open_active] + [s.key for s in form.side if not s.terminal]
    rows_in_period = sum(sum(stages.values()) for stages in counts.by_source.values())
    medians = await stay_medians(session, period, timed, rows_in_period, use_summary=use_summary)
    return Stats(
        period=period,
        table=conversion_table(chain),
        side=tuple((s.key, counts.stage(s.key)) for s in form.side),
        lost=tuple((s.key, counts.stage(s.key)) for s in form.lost),
        lost_reasons=_reasons(counts.lost_reasons),
        medians=medians,
        pipeline=await pipeline(session, funnel, period),
    )


# ------------------------------------------------------------------ /sources


@dataclass(frozen=True)
class SourceStats:
    source: str
    table: ConversionTable
    lost: int

    @property
    def total(self) -> int:
        return self.table.total


async def sources(session: AsyncSession, funnel: Funnel, period: Period, *, use_summary: bool | None = None
                  ) -> list[SourceStats]:
    """The conversion chain per deep-link source, the biggest sources first."""
    form = shape(funnel)
    counts = await reached(session, period, use_summary=use_summary)
    out = []
    for source, stages in counts.by_source.items():
        table = conversion_table([(s.key, stages.get(s.key, 0)) for s in form.chain])
        lost = sum(stages.get(s.key, 0) for s in form.lost)
        if table.total or lost or any(stages.values()):
            out.append(SourceStats(source, table, lost))
    return sorted(out, key=lambda s: (-s.total, s.source))


# ------------------------------------------------------------------ /managers


@dataclass(frozen=True)
class ManagerStats:
    manager_id: int
    name: str | None
    taken: int
    won: int
    lost: int
    win_rate: Decimal | None  # won / (won + lost): of the deals the manager closed
    to_take: float | None  # median seconds from the handoff to Take
    to_first_move: float | None  # median seconds from the handoff to the manager's first stage move


async def managers(session: AsyncSession, period: Period) -> list[ManagerStats]:
    """Per manager, for the leads created in the period that a manager took."""
    to_take = seconds_between(Lead.assigned_at, Lead.handed_off_at)
    to_move = seconds_between(Lead.first_move_at, Lead.handed_off_at)
    rows = await session.execute(
        select(Lead.manager_id, Lead.manager_name, Lead.outcome, to_take, to_move)
        .where(Lead.manager_id.is_not(None), *_between(Lead.created_at, period.start, period.end))
        .order_by(Lead.id)
    )
    acc: dict[int, dict] = {}
    for manager_id, name, outcome, take, move in rows:
        item = acc.setdefault(manager_id, {"name": None, "taken": 0, "won": 0, "lost": 0, "take": [], "move": []})
        item["name"] = name or item["name"]
        item["taken"] += 1
        if outcome == "won":
            item["won"] += 1
        elif outcome == "lost":
            item["lost"] += 1
        if take is not None:
            item["take"].append(max(0.0, round(float(take), 3)))
        if move is not None:
            item["move"].append(max(0.0, round(float(move), 3)))
    out = [
        ManagerStats(mid, v["name"], v["taken"], v["won"], v["lost"], percent(v["won"], v["won"] + v["lost"]),
                     median(v["take"]), median(v["move"]))
        for mid, v in acc.items()
    ]
    return sorted(out, key=lambda m: (-m.won, -m.taken, m.manager_id))


# ------------------------------------------------------------------ /dropoff


@dataclass(frozen=True)
class DropStep:
    key: str  # a step key, or "summary"
    reached: int  # runs that got at least this far
    stopped: int  # runs that ended here without finishing (and without declining)
    conversion: Decimal | None  # reached / reached at the previous step


@dataclass(frozen=True)
class Dropoff:
    started: int
    declined: int
    completed: int
    steps: tuple[DropStep, ...]

    @property
    def completion(self) -> Decimal | None:
        return percent(self.completed, self.started)

    @property
    def worst(self) -> DropStep | None:
        candidates = [s for s in self.steps if s.stopped]
        return max(candidates, key=lambda s: s.stopped) if candidates else None


async def dropoff(session: AsyncSession, funnel: Funnel, period: Period) -> Dropoff:
    """Of the dialogues started in the period: how far they got and where they stopped.

    A run "reached" step i when its furthest step index is >= i (a step hidden by `show_if` that the
    prospect passed over counts as passed); it "stopped" at the step it was on when it went quiet."""
    dr = DialogueRun
    done = case((dr.completed_at.is_not(None), 1), else_=0)
    rows = (await session.execute(
        select(dr.max_step_index, dr.last_step, done, dr.declined, func.count())
        .where(*_between(dr.started_at, period.start, period.end))
        .group_by(dr.max_step_index, dr.last_step, done, dr.declined)
    )).all()
    keys = [s.key for s in funnel.steps] + ["summary"]
    started = declined = completed = 0
    furthest: dict[int, int] = defaultdict(int)
    stopped: dict[str, int] = defaultdict(int)
    for max_index, last_step, finished, was_declined, count in rows:
        started += count
        furthest[min(int(max_index), len(keys) - 1)] += count
        if finished:
            completed += count
        elif was_declined:
            declined += count
        elif last_step:
            stopped[last_step] += count
    steps = []
    previous = started
    for index, key in enumerate(keys):
        got = sum(n for i, n in furthest.items() if i >= index)
        steps.append(DropStep(key, got, stopped.get(key, 0), percent(got, previous)))
        previous = got
    return Dropoff(started, declined, completed, tuple(steps))


# ------------------------------------------------------------------ /trend


@dataclass(frozen=True)
class TrendPoint:
    label: str
    start: date
    leads: int
    won: int


def _month_start(day: date) -> date:
    return day.replace(day=1)


MAX_TREND_DAYS = 92


async def trend(session: AsyncSession, period: Period, tz: tzinfo) -> list[TrendPoint]:
    """Leads created (and, of them, won) per local day; per local month for periods over 92 days."""
    first, last = period.first_day, period.last_day
    if first is None or last is None:
        bounds = (await session.execute(select(func.min(Lead.created_at), func.max(Lead.created_at)))).one()
        if bounds[0] is None:
            return []
        low = bounds[0] if bounds[0].tzinfo else bounds[0].replace(tzinfo=UTC)
        high = bounds[1] if bounds[1].tzinfo else bounds[1].replace(tzinfo=UTC)
        first, last = low.astimezone(tz).date(), high.astimezone(tz).date()
    if (last - first).days < MAX_TREND_DAYS:
        starts = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        labels = [d.strftime("%d.%m") for d in starts]
        after = last + timedelta(days=1)
    else:
        starts, cursor = [], _month_start(first)
        while cursor <= last:
            starts.append(cursor)
            cursor = _next_month(cursor)
        labels = [d.strftime("%Y-%m") for d in starts]
        after = cursor
    edges = [local_midnight(d, tz) for d in starts[1:]] + [local_midnight(after, tz)]
    index = case(*[(Lead.created_at < edge, i) for i, edge in enumerate(edges)], else_=len(edges))
    is_won = case((Lead.outcome == "won", 1), else_=0)
    begin = max(local_midnight(starts[0], tz), period.start) if period.start else local_midnight(starts[0], tz)
    rows = await session.execute(
        select(index.label("bucket"), func.count(), func.sum(is_won))
        .where(Lead.created_at >= begin, Lead.created_at < edges[-1]).group_by("bucket")
    )
    counts = {int(i): (int(n), int(w or 0)) for i, n, w in rows}
    return [TrendPoint(labels[i], starts[i], *counts.get(i, (0, 0))) for i in range(len(starts))]
