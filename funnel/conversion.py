"""Funnel conversion arithmetic (standard library only).

Rules, stated once and used everywhere (bot reports, charts, README):

* **Reached** counts come from the stage history: a lead counts at every stage it ever reached, even
  if it later left it (New -> Qualified -> Lost counts at New and at Qualified).
* **Conversion** of step *i* = ``reached(i) / reached(i-1) x 100`` (500 requests, 300 contacted,
  120 presented gives 60.0 % and 40.0 %).  A lead that skips a stage (a manager moved it
  Contacted -> Negotiation) is counted only where it really was: it counts at Negotiation but not at
  Proposal, so a step right after a skipped stage may show more than 100 %.
* **Share** of step *i* = ``reached(i) / reached(first) x 100``; **overall** conversion = share of
  the last step (normally Won).
* **Biggest leak** = the step that loses the most leads in absolute numbers
  (``reached(i-1) - reached(i)``, largest wins, the earliest step on a tie); steps that lose nothing
  are never a leak.  Its relative drop is reported alongside.
* Percentages are exact decimals rounded half-even to one decimal place (``Decimal``), money to
  cents.  A division by zero gives ``None`` ("no data"), never an error.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = [
    "ConversionRow",
    "ConversionTable",
    "Leak",
    "conversion_table",
    "histogram_median",
    "median",
    "percent",
    "weighted_pipeline",
]

ONE_DECIMAL = Decimal("0.1")
CENTS = Decimal("0.01")


def percent(part: int | Decimal, whole: int | Decimal, places: Decimal = ONE_DECIMAL) -> Decimal | None:
    """``part / whole x 100`` rounded half-even (one decimal by default); None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(places, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ConversionRow:
    stage: str
    reached: int
    conversion: Decimal | None  # from the previous step, %; None for the first step or when it had 0
    share: Decimal | None  # of the first step, %
    dropped: int | None  # reached(previous) - reached(this); None for the first step (negative after a skip)


@dataclass(frozen=True)
class Leak:
    from_stage: str
    to_stage: str
    lost: int  # leads that reached from_stage but not to_stage
    rate: Decimal | None  # lost / reached(from_stage) x 100


@dataclass(frozen=True)
class ConversionTable:
    rows: tuple[ConversionRow, ...]
    overall: Decimal | None  # last step / first step, %
    leak: Leak | None

    @property
    def total(self) -> int:
        return self.rows[0].reached if self.rows else 0


def conversion_table(chain: Sequence[tuple[str, int]]) -> ConversionTable:
    """Rows for ``[(stage, reached), ...]`` given in chain order (see the module rules)."""
    rows: list[ConversionRow] = []
    first = chain[0][1] if chain else 0
    leak: Leak | None = None
    previous: tuple[str, int] | None = None
    for stage, reached in chain:
        reached = int(reached)
        if previous is None:
            rows.append(ConversionRow(stage, reached, None, percent(reached, first), None))
        else:
            dropped = previous[1] - reached
            rows.append(ConversionRow(stage, reached, percent(reached, previous[1]), percent(reached, first), dropped))
            if dropped > 0 and (leak is None or dropped > leak.lost):
                leak = Leak(previous[0], stage, dropped, percent(dropped, previous[1]))
        previous = (stage, reached)
    overall = percent(rows[-1].reached, first) if len(rows) > 1 else None
    return ConversionTable(tuple(rows), overall, leak)


def median(values: Iterable[float]) -> float | None:
    """The median (the mean of the two middle values for an even count); None for no values."""
    data = sorted(values)
    if not data:
        return None
    return float(statistics.median(data))


def histogram_median(buckets: Sequence[tuple[float, float, int]]) -> float | None:
    """Approximate median from ``[(low, high, count), ...]`` sorted by ``low``, interpolated linearly
    inside the bucket that holds the middle observation.  None when there are no observations."""
    total = sum(count for _, _, count in buckets)
    if total <= 0:
        return None
    middle = total / 2
    seen = 0
    for low, high, count in buckets:
        if count and seen + count >= middle:
            return low + (high - low) * (middle - seen) / count
        seen += count
    return buckets[-1][1]  # pragma: no cover - unreachable with a positive total


def weighted_pipeline(items: Iterable[tuple[int | Decimal | None, int]]) -> Decimal:
    """Sum of ``value x probability / 100`` over ``[(value, probability %), ...]``, in cents.

    ``value`` is a lead count or a deal amount; ``None`` (no amount entered yet) counts as 0."""
    total = Decimal(0)
    for value, probability in items:
        if value is None:
            continue
        total += Decimal(value) * Decimal(probability) / 100
    return total.quantize(CENTS, rounding=ROUND_HALF_EVEN)
