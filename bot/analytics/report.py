"""Figures -> HTML messages (every text is a Fluent key; every value from users is escaped)."""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from decimal import Decimal

from bot.analytics.charts import FunnelBar
from bot.analytics.periods import Period
from bot.analytics.queries import Dropoff, ManagerStats, Median, SourceStats, Stats, shape
from funnel import Funnel
from funnel.conversion import percent

Texts = Callable[..., str]
DASH = "—"
MESSAGE_LIMIT = 4000
MAX_SOURCES = 12
MAX_MANAGERS = 20


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def num(value: int | Decimal) -> str:
    """1234567 -> '1 234 567' (narrow no-break spaces: the same in every language)."""
    if isinstance(value, Decimal):
        text = f"{value:,.2f}".removesuffix(".00")
    else:
        text = f"{int(value):,}"
    return text.replace(",", "\u202f")


def pct(value: Decimal | None) -> str:
    return DASH if value is None else f"{value}%"


def period_label(period: Period, t: Texts) -> str:
    return t("admin-period-all") if period.is_all else esc(period.label)


def duration(seconds: float | None, t: Texts) -> str:
    """Two largest units: '2 d 4 h', '3 h 5 min', '45 s'."""
    if seconds is None:
        return DASH
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "admin-dur-days"), (hours, "admin-dur-hours"), (minutes, "admin-dur-minutes"),
             (secs, "admin-dur-seconds")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    shown = [t(key, n=value) for value, key in parts[:2] if value or key == parts[0][1]]
    return " ".join(shown)


class _Titles:
    def __init__(self, funnel: Funnel, locale: str) -> None:
        self.funnel, self.locale = funnel, locale

    def stage(self, key: str) -> str:
        return esc(self.funnel.label(self.funnel.stage(key).title, self.locale)) if self.funnel.has_stage(key) \
            else esc(key)

    def reason(self, key: str) -> str:
        option = self.funnel.lost_reason(key)
        return esc(self.funnel.label(option.label, self.locale)) if option else esc(key)

    def step(self, key: str, t: Texts) -> str:
        if key == "summary":
            return t("dropoff-summary")
        return esc(self.funnel.label(self.funnel.step(key).title, self.locale)) if self.funnel.has_step(key) \
            else esc(key)


def _join(lines: Sequence[str], t: Texts) -> str:
    text = "\n".join(lines).strip()
    if len(text) <= MESSAGE_LIMIT:
        return text
    cut = text[:MESSAGE_LIMIT].rsplit("\n", 1)[0]
    return cut + "\n…"


def _median_line(stage: str, item: Median, t: Texts) -> str:
    if item.seconds is None:
        return t("stats-median-none", stage=stage)
    mark = "≈" if item.approximate else ""
    return t("stats-median-row", stage=stage, duration=mark + duration(item.seconds, t), count=num(item.count))


def render_stats(stats: Stats, funnel: Funnel, t: Texts, locale: str) -> str:
    titles = _Titles(funnel, locale)
    lines = [t("stats-title", period=period_label(stats.period, t))]
    if not stats.total and not stats.lost_total and not any(n for _, n in stats.side):
        lines.append(t("stats-empty"))
        return _join(lines, t)
    lines.append(t("stats-leads", count=num(stats.total)))
    lines.append("")
    for index, row in enumerate(stats.table.rows):
        if index == 0:
            lines.append(t("stats-row-first", stage=titles.stage(row.stage), count=num(row.reached)))
        else:
            lines.append(t("stats-row", stage=titles.stage(row.stage), count=num(row.reached),
                           conversion=pct(row.conversion), share=pct(row.share)))
    lines.append("")
    lines.extend(_headline(stats, funnel, titles, t))
    if stats.table.leak is None:
        lines.append(t("stats-no-leak"))
    if stats.side:
        lines.append(" · ".join(t("stats-side-row", stage=titles.stage(k), count=num(n)) for k, n in stats.side))
    lines.append("")
    lines.append(t("stats-lost-title", count=num(stats.lost_total)))
    for reason, count in stats.lost_reasons:
        lines.append(t("stats-reason-row", reason=titles.reason(reason), count=num(count),
                       percent=pct(_share(count, stats.lost_total))))
    lines.append("")
    lines.append(t("stats-median-title"))
    approx = False
    for key, item in stats.medians.items():
        lines.append(_median_line(titles.stage(key), item, t))
        approx = approx or item.approximate
    if approx:
        lines.append(t("stats-approx"))
    lines.append("")
    pipe = stats.pipeline
    lines.append(t("stats-pipeline-title"))
    lines.append(t("stats-pipeline-deals", deals=num(pipe.expected_deals), open=num(pipe.open)))
    lines.append(t("stats-pipeline-amount", amount=num(pipe.weighted_amount), with_amount=num(pipe.with_amount),
                   open=num(pipe.open)))
    lines.append("")
    lines.append(t("stats-note-skip"))
    return _join(lines, t)


def _share(part: int, whole: int) -> Decimal | None:
    return percent(part, whole)


def render_sources(items: Sequence[SourceStats], period: Period, funnel: Funnel, t: Texts, locale: str) -> str:
    titles = _Titles(funnel, locale)
    lines = [t("sources-title", period=period_label(period, t))]
    if not items:
        lines.append(t("stats-empty"))
        return _join(lines, t)
    won = shape(funnel).won
    for item in items[:MAX_SOURCES]:
        rows = item.table.rows
        lines.append("")
        lines.append(t("sources-row", source=esc(item.source), leads=num(item.total),
                       won=num(rows[-1].reached if won and rows else 0), overall=pct(item.table.overall),
                       lost=num(item.lost)))
        chain = [num(rows[0].reached)] + [f"{num(r.reached)} ({pct(r.conversion)})" for r in rows[1:]]
        lines.append(" → ".join(chain))
        if item.table.leak is not None:
            leak = item.table.leak
            lines.append(t("sources-leak", **{"from": titles.stage(leak.from_stage)},
                           to=titles.stage(leak.to_stage), lost=num(leak.lost), percent=pct(leak.rate)))
    if len(items) > MAX_SOURCES:
        lines.append("")
        lines.append(t("sources-more", count=len(items) - MAX_SOURCES))
    lines.append("")
    lines.append(t("sources-legend", chain=" → ".join(titles.stage(s.key) for s in shape(funnel).chain)))
    return _join(lines, t)


def render_managers(items: Sequence[ManagerStats], period: Period, t: Texts) -> str:
    lines = [t("managers-title", period=period_label(period, t))]
    if not items:
        lines.append(t("managers-empty"))
        return _join(lines, t)
    for item in items[:MAX_MANAGERS]:
        lines.append("")
        lines.append(t("managers-row", name=esc(item.name or item.manager_id), taken=num(item.taken),
                       won=num(item.won), lost=num(item.lost), rate=pct(item.win_rate)))
        lines.append(t("managers-times", take=duration(item.to_take, t), move=duration(item.to_first_move, t)))
    lines.append("")
    lines.append(t("managers-note"))
    return _join(lines, t)


def render_dropoff(data: Dropoff, period: Period, funnel: Funnel, t: Texts, locale: str) -> str:
    titles = _Titles(funnel, locale)
    lines = [t("dropoff-title", period=period_label(period, t))]
    if not data.started:
        lines.append(t("dropoff-empty"))
        return _join(lines, t)
    lines.append(t("dropoff-started", count=num(data.started), declined=num(data.declined),
                   completed=num(data.completed), percent=pct(data.completion)))
    lines.append("")
    for step in data.steps:
        lines.append(t("dropoff-row", step=titles.step(step.key, t), count=num(step.reached),
                       percent=pct(step.conversion), stopped=num(step.stopped)))
    worst = data.worst
    if worst is not None:
        lines.append("")
        lines.append(t("dropoff-worst", step=titles.step(worst.key, t), count=num(worst.stopped)))
    lines.append("")
    lines.append(t("dropoff-note"))
    return _join(lines, t)


def _headline(stats: Stats, funnel: Funnel, titles: _Titles, t: Texts) -> list[str]:
    """The overall conversion to Won and the biggest leak (shared by /stats and the digest)."""
    lines = []
    won = shape(funnel).won
    if won is not None:
        lines.append(t("stats-overall", won=titles.stage(won.key), percent=pct(stats.table.overall)))
    leak = stats.table.leak
    if leak is not None:
        lines.append(t("stats-leak", **{"from": titles.stage(leak.from_stage)}, to=titles.stage(leak.to_stage),
                       lost=num(leak.lost), percent=pct(leak.rate)))
    return lines


def render_digest(stats: Stats, funnel: Funnel, t: Texts, locale: str, kind: str, argument: str) -> str:
    titles = _Titles(funnel, locale)
    won = shape(funnel).won
    lines = [t("digest-title-weekly" if kind == "weekly" else "digest-title-daily",
               period=period_label(stats.period, t))]
    lines.append(t("digest-body", leads=num(stats.total), won=num(stats.won if won else 0),
                   lost=num(stats.lost_total)))
    lines.extend(_headline(stats, funnel, titles, t))
    pipe = stats.pipeline
    lines.append(t("stats-pipeline-deals", deals=num(pipe.expected_deals), open=num(pipe.open)))
    lines.append(t("digest-more", command=f"/stats {argument}"))
    return _join(lines, t)


def funnel_bars(stats: Stats, funnel: Funnel, locale: str) -> list[FunnelBar]:
    """The conversion chain as chart bars (plain text labels: the chart is not HTML)."""
    return [
        FunnelBar(funnel.label(funnel.stage(row.stage).title, locale), row.reached, row.conversion, row.share)
        for row in stats.table.rows
    ]


def chart_footnote(stats: Stats, funnel: Funnel, t: Texts, locale: str) -> str:
    """'Nurture: 120 · Lost: 80' under the funnel chart."""
    parts = [t("stats-side-row", stage=funnel.label(funnel.stage(key).title, locale), count=num(count))
             for key, count in (*stats.side, *stats.lost)]
    return "  ·  ".join(parts)
