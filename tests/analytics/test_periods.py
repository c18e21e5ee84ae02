"""Periods typed by admins: local midnights in TIMEZONE as UTC, end exclusive."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.analytics.periods import EXAMPLES, PeriodError, parse_period

KYIV = ZoneInfo("Europe/Kyiv")
NOW = datetime(2026, 10, 15, 9, 30, tzinfo=UTC)  # 12:30 in Kyiv (UTC+3, summer time)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_today_is_the_local_calendar_day():
    p = parse_period("today", KYIV, NOW)
    assert (p.start, p.end) == (utc(2026, 10, 14, 21), utc(2026, 10, 15, 21))
    assert p.label == "2026-10-15" and p.kind == "today"
    # 22:30 UTC on the 15th is already the 16th in Kyiv
    late = parse_period("today", KYIV, utc(2026, 10, 15, 22, 30))
    assert late.first_day == date(2026, 10, 16)


def test_last_days_include_today():
    p = parse_period("7d", KYIV, NOW)
    assert (p.start, p.end) == (utc(2026, 10, 8, 21), utc(2026, 10, 15, 21))
    assert (p.first_day, p.last_day) == (date(2026, 10, 9), date(2026, 10, 15))
    p = parse_period("30d", KYIV, NOW)
    assert p.start == utc(2026, 9, 15, 21) and p.end == utc(2026, 10, 15, 21)


def test_default_is_30_days_and_case_and_spaces_do_not_matter():
    assert parse_period(None, KYIV, NOW) == parse_period("30d", KYIV, NOW)
    assert parse_period("  ", KYIV, NOW) == parse_period("30d", KYIV, NOW)
    assert parse_period(" TODAY ", KYIV, NOW) == parse_period("today", KYIV, NOW)


def test_all_has_no_bounds():
    p = parse_period("all", KYIV, NOW)
    assert p.start is None and p.end is None and p.is_all
    assert p.contains(utc(1999, 1, 1))


def test_a_month_across_the_autumn_clock_change():
    # Kyiv leaves summer time on 2026-10-25: October starts at UTC+3 and November at UTC+2
    p = parse_period("2026-10", KYIV, NOW)
    assert (p.start, p.end) == (utc(2026, 9, 30, 21), utc(2026, 10, 31, 22))
    assert p.label == "2026-10" and (p.first_day, p.last_day) == (date(2026, 10, 1), date(2026, 10, 31))
    december = parse_period("2026-12", KYIV, NOW)
    assert (december.start, december.end) == (utc(2026, 11, 30, 22), utc(2026, 12, 31, 22))


def test_a_range_across_the_spring_clock_change_includes_both_days():
    # summer time starts on 2026-03-29 in Kyiv
    p = parse_period("2026-03-28..2026-03-30", KYIV, NOW)
    assert (p.start, p.end) == (utc(2026, 3, 27, 22), utc(2026, 3, 30, 21))
    assert (p.end - p.start).total_seconds() == 3 * 86400 - 3600  # one hour shorter
    assert p.label == "2026-03-28 – 2026-03-30"
    one_day = parse_period("2026-10-01..2026-10-01", KYIV, NOW)
    assert (one_day.start, one_day.end) == (utc(2026, 9, 30, 21), utc(2026, 10, 1, 21))


def test_boundaries_are_inclusive_start_exclusive_end():
    p = parse_period("2026-10", KYIV, NOW)
    assert p.contains(utc(2026, 9, 30, 21))  # 00:00 on Oct 1 in Kyiv
    assert not p.contains(utc(2026, 9, 30, 20, 59, 59))
    assert p.contains(utc(2026, 10, 31, 21, 59, 59))
    assert not p.contains(utc(2026, 10, 31, 22))  # 00:00 on Nov 1 in Kyiv


def test_a_single_day_and_utc():
    p = parse_period("2026-10-05", ZoneInfo("UTC"), NOW)
    assert (p.start, p.end) == (utc(2026, 10, 5), utc(2026, 10, 6))


@pytest.mark.parametrize("text", [
    "yesteryear", "7", "d7", "0d", "2026-13", "2026-1", "2026-10-32", "2026-02-30", "2026-10-31..2026-10-01",
    "2026-10-01..", "..2026-10-01", "2026/10", "10-2026", "7 d", "99999d",
])
def test_malformed_periods_explain_the_right_form(text):
    with pytest.raises(PeriodError) as info:
        parse_period(text, KYIV, NOW)
    assert info.value.example == EXAMPLES
    assert "2026-10-01..2026-10-31" in str(info.value)
    assert "7d" in info.value.example
