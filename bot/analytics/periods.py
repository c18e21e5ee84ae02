"""Report periods: `today`, `7d`, `30d`, `all`, a month `2026-10`, a day `2026-10-05` or a range
`2026-10-01..2026-10-31` (both days included).

Boundaries are local midnights in the configured TIMEZONE converted to UTC; the end is exclusive.
`7d` and `30d` are the last 7 / 30 calendar days including today."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = ["DEFAULT_PERIOD", "EXAMPLES", "Period", "PeriodError", "local_midnight", "parse_period"]

DEFAULT_PERIOD = "30d"
EXAMPLES = "today, 7d, 30d, all, 2026-10, 2026-10-01..2026-10-31"
_DAYS_RE = re.compile(r"(\d{1,3})d")
_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_DAYS = 3660


class PeriodError(ValueError):
    """A period that cannot be read; `example` shows the accepted forms."""

    def __init__(self, text: str, problem: str = "malformed") -> None:
        super().__init__(f"bad period {text!r}: {problem}; use one of: {EXAMPLES}")
        self.text = text
        self.problem = problem
        self.example = EXAMPLES


@dataclass(frozen=True)
class Period:
    start: datetime | None  # aware UTC, inclusive; None: from the beginning
    end: datetime | None  # aware UTC, exclusive; None: no end
    label: str  # "2026-10-01 – 2026-10-31", "2026-10", "all"
    kind: str  # today, days, month, day, range, all
    first_day: date | None = None  # local calendar days covered (inclusive)
    last_day: date | None = None

    @property
    def is_all(self) -> bool:
        return self.start is None and self.end is None

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant of 00:00 local time on `day`."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _days(first: date, last: date, tz: tzinfo, kind: str, label: str | None = None) -> Period:
    if last < first:
        raise PeriodError(f"{first}..{last}", "the range ends before it starts")
    if (last - first).days > MAX_DAYS:
        raise PeriodError(f"{first}..{last}", "the range is too long")
    text = label or (str(first) if first == last else f"{first} – {last}")
    return Period(local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz), text, kind, first, last)


def _date(text: str, whole: str) -> date:
    if not _DAY_RE.fullmatch(text):
        raise PeriodError(whole)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(whole, "no such date") from None


def parse_period(text: str | None, tz: tzinfo, now: datetime) -> Period:
    """Read a period typed by an admin (empty: the default, 30d). Raises PeriodError."""
    raw = (text or "").strip()
    value = (raw or DEFAULT_PERIOD).lower()
    today = now.astimezone(tz).date()
    if value == "all":
        return Period(None, None, "all", "all")
    if value == "today":
        return _days(today, today, tz, "today")
    if value == "yesterday":
        return _days(today - timedelta(days=1), today - timedelta(days=1), tz, "day")
    if match := _DAYS_RE.fullmatch(value):
        count = int(match.group(1))
        if not 1 <= count <= MAX_DAYS:
            raise PeriodError(raw, "the number of days must be between 1 and 3660")
        return _days(today - timedelta(days=count - 1), today, tz, "days")
    if match := _MONTH_RE.fullmatch(value):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 1970:
            raise PeriodError(raw, "no such month")
        first = date(year, month, 1)
        following = date(year + (month == 12), month % 12 + 1, 1)
        return _days(first, following - timedelta(days=1), tz, "month", label=value)
    if ".." in value:
        left, _, right = value.partition("..")
        return _days(_date(left.strip(), raw), _date(right.strip(), raw), tz, "range")
    if _DAY_RE.fullmatch(value):
        day = _date(value, raw)
        return _days(day, day, tz, "day")
    raise PeriodError(raw)
