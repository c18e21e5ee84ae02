"""The pure conversion arithmetic (funnel.conversion)."""
from __future__ import annotations

from decimal import Decimal

from funnel.conversion import conversion_table, histogram_median, median, percent, weighted_pipeline


def test_the_issue_example_gives_exactly_60_and_40():
    table = conversion_table([("requests", 500), ("contacted", 300), ("presented", 120)])
    assert [r.conversion for r in table.rows] == [None, Decimal("60.0"), Decimal("40.0")]
    assert [r.share for r in table.rows] == [Decimal("100.0"), Decimal("60.0"), Decimal("24.0")]
    assert [r.dropped for r in table.rows] == [None, 200, 180]
    assert table.overall == Decimal("24.0")
    assert table.total == 500


def test_biggest_leak_is_the_largest_absolute_drop():
    table = conversion_table([("a", 500), ("b", 300), ("c", 120)])
    assert table.leak is not None
    assert (table.leak.from_stage, table.leak.to_stage, table.leak.lost, table.leak.rate) == \
        ("a", "b", 200, Decimal("40.0"))
    # absolute, not relative: 100 -> 10 loses 90 % but only 90 leads; 1000 -> 100 loses 900
    table = conversion_table([("a", 1000), ("b", 100), ("c", 10)])
    assert table.leak.to_stage == "b"


def test_a_tie_goes_to_the_earliest_step():
    table = conversion_table([("a", 300), ("b", 200), ("c", 100)])
    assert (table.leak.from_stage, table.leak.to_stage) == ("a", "b")


def test_empty_and_zero_never_divide_by_zero():
    empty = conversion_table([])
    assert empty.rows == () and empty.overall is None and empty.leak is None and empty.total == 0
    zeros = conversion_table([("a", 0), ("b", 0), ("c", 0)])
    assert [r.conversion for r in zeros.rows] == [None, None, None]
    assert [r.share for r in zeros.rows] == [None, None, None]
    assert zeros.overall is None and zeros.leak is None
    tail = conversion_table([("a", 10), ("b", 0), ("c", 0)])
    assert [r.conversion for r in tail.rows] == [None, Decimal("0.0"), None]
    assert tail.overall == Decimal("0.0")
    single = conversion_table([("a", 7)])
    assert single.overall is None and single.rows[0].share == Decimal("100.0")


def test_a_skipped_stage_is_counted_where_leads_really_were():
    # 10 contacted; 4 got a proposal; 6 reached negotiation (2 of them skipped the proposal)
    table = conversion_table([("contacted", 10), ("proposal", 4), ("negotiation", 6), ("won", 3)])
    assert table.rows[2].conversion == Decimal("150.0")  # over 100 % after a skipped stage
    assert table.rows[2].dropped == -2
    assert table.leak.to_stage == "proposal" and table.leak.lost == 6
    assert table.overall == Decimal("30.0")


def test_rounding_is_half_even_on_one_decimal():
    assert percent(1, 3) == Decimal("33.3")
    assert percent(2, 3) == Decimal("66.7")
    assert percent(1, 8) == Decimal("12.5")
    assert percent(1, 16) == Decimal("6.2")  # 6.25 -> 6.2 (half to even)
    assert percent(3, 16) == Decimal("18.8")  # 18.75 -> 18.8
    assert percent(5, 0) is None


def test_median():
    assert median([]) is None
    assert median([5]) == 5
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_histogram_median_interpolates_inside_the_middle_bucket():
    assert histogram_median([]) is None
    assert histogram_median([(0, 10, 0)]) is None
    assert histogram_median([(0, 10, 2)]) == 5
    assert histogram_median([(0, 10, 1), (10, 20, 2), (20, 30, 1)]) == 15


def test_weighted_pipeline_counts_and_amounts():
    assert weighted_pipeline([]) == Decimal("0.00")
    assert weighted_pipeline([(10, 20), (4, 50), (1, 75)]) == Decimal("4.75")
    assert weighted_pipeline([(Decimal("1000.00"), 20), (None, 50), (Decimal("333.33"), 75)]) == Decimal("450.00")
