"""PNG charts for Telegram (matplotlib, Agg backend, object API: no global pyplot state, safe to
render in a worker thread).  1200 x 800 px with large fonts, so they stay readable on a phone."""
from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported on first use: it costs ~1 s of every start otherwise
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 12, 8, 100  # 1200 x 800 px
BAR = "#2f6fdf"
WON = "#2e9e5b"
GREY = "#8a8f98"
TEXT = "#1d1f23"
FONT = 20


@dataclass(frozen=True)
class FunnelBar:
    label: str
    count: int
    conversion: Decimal | None  # from the previous bar, %
    share: Decimal | None  # of the first bar, %


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"


def _empty(fig: Figure, title: str, message: str) -> bytes:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title, fontsize=FONT + 4, color=TEXT, pad=20)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=FONT + 2, color=GREY, transform=ax.transAxes)
    return _png(fig)


def funnel_chart(bars: Sequence[FunnelBar], title: str, of_previous: str, empty: str,
                 footnote: str = "") -> bytes:
    """Horizontal bars, one per stage (first on top), labelled with the count and the conversion from
    the previous stage (`of_previous` explains the percentage under the chart)."""
    fig = _figure()
    if not bars or not bars[0].count:
        return _empty(fig, title, empty)
    ax = fig.add_subplot()
    labels = [textwrap.fill(b.label, 14) for b in bars]
    fig.subplots_adjust(left=0.24, right=0.97, top=0.88, bottom=0.14)
    positions = list(range(len(bars)))[::-1]
    top = max(b.count for b in bars) or 1
    colors = [WON if i == len(bars) - 1 else BAR for i in range(len(bars))]
    ax.barh(positions, [b.count for b in bars], color=colors, height=0.68)
    ax.set_yticks(positions, labels, fontsize=FONT)
    ax.set_xlim(0, top * 1.02)
    ax.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    for index, (position, bar) in enumerate(zip(positions, bars, strict=True)):
        text = f"{bar.count:,}".replace(",", "\u202f")
        if index:
            text += f"  ·  {_pct(bar.conversion)}"
        inside = bar.count > top * 0.6
        ax.text(bar.count - top * 0.015 if inside else bar.count + top * 0.015, position, text,
                va="center", ha="right" if inside else "left", fontsize=FONT,
                color="white" if inside else TEXT, fontweight="bold")
    ax.set_title(title, fontsize=FONT + 4, color=TEXT, pad=18, loc="left")
    notes = [of_previous] + ([footnote] if footnote else [])
    fig.text(0.02, 0.03, "\n".join(notes), fontsize=FONT - 4, color=GREY, va="bottom")
    return _png(fig)


def trend_chart(labels: Sequence[str], leads: Sequence[int], won: Sequence[int], title: str,
                leads_label: str, won_label: str, empty: str) -> bytes:
    """Leads per day (or month) as bars, the won ones among them as a darker overlay."""
    fig = _figure()
    if not labels or not any(leads):
        return _empty(fig, title, empty)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.17)
    x = list(range(len(labels)))
    ax.bar(x, leads, color=BAR, label=leads_label, width=0.8)
    ax.bar(x, won, color=WON, label=won_label, width=0.8)
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step], [labels[i] for i in x[::step]], fontsize=FONT - 4, rotation=30, ha="right")
    ax.tick_params(axis="y", labelsize=FONT - 4)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=FONT - 4, frameon=False, loc="upper left")
    ax.set_title(title, fontsize=FONT + 2, color=TEXT, pad=16, loc="left")
    return _png(fig)
