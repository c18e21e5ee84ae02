"""Exact figures from known histories (SQLite), through the summary tables and without them."""
from __future__ import annotations

import inspect
import random
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.analytics import queries
from bot.analytics.models import ReachedDaily, ReachedMonthly, StayDaily, StayMonthly, rebuild, summary_ready
from bot.analytics.periods import parse_period
from tests.analytics.conftest import add_lead, add_run, utc

KYIV = ZoneInfo("Europe/Kyiv")
NOW = utc(2026, 11, 20, 12)
OCTOBER = parse_period("2026-10", KYIV, NOW)
ALL = parse_period("all", KYIV, NOW)
CHAIN = ["new", "qualified", "contacted", "proposal", "negotiation", "won"]


def chain_of(stats) -> list[tuple[str, int, Decimal | None]]:
    return [(r.stage, r.reached, r.conversion) for r in stats.table.rows]


@pytest.fixture(params=[True, False], ids=["summary", "raw"])
async def built(request, db):
    """Run the test once reading the summary tables (rebuilt + marker) and once the raw history."""

    async def finish(session) -> None:
        if request.param:
            await rebuild(session)
        await session.commit()

    finish.summary = request.param
    return finish


async def test_the_issue_example_500_300_120(db, funnel, built):
    async with db.session() as s:
        created = utc(2026, 10, 10, 9)
        for i in range(500):
            path = ["new"] + (["qualified"] if i < 300 else ["nurture"]) + (["contacted"] if i < 120 else [])
            await add_lead(s, created + timedelta(minutes=i), path)
        await built(s)
    async with db.session() as s:
        assert await summary_ready(s) is built.summary
        stats = await queries.stats(s, funnel, OCTOBER)
    assert chain_of(stats)[:3] == [("new", 500, None), ("qualified", 300, Decimal("60.0")),
                                   ("contacted", 120, Decimal("40.0"))]
    assert stats.table.rows[3].reached == 0 and stats.table.rows[3].conversion == Decimal("0.0")
    assert stats.table.overall == Decimal("0.0")
    assert stats.table.leak.from_stage == "new" and stats.table.leak.lost == 200
    assert dict(stats.side) == {"nurture": 200}
    assert stats.total == 500


async def test_reached_comes_from_the_history_and_lost_reasons_are_counted(db, funnel, built):
    async with db.session() as s:
        c = utc(2026, 10, 5, 12)
        await add_lead(s, c, ["new", "qualified", "lost"], reason="too_expensive")
        await add_lead(s, c, ["new", "qualified", "contacted", "lost"], reason="too_expensive")
        await add_lead(s, c, ["new", "nurture", "lost"], reason="no_budget")
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal", "won"], amount="100")
        await add_lead(s, c, ["new", "qualified"])
        await built(s)
    async with db.session() as s:
        stats = await queries.stats(s, funnel, OCTOBER)
    assert chain_of(stats) == [
        ("new", 5, None), ("qualified", 4, Decimal("80.0")), ("contacted", 2, Decimal("50.0")),
        ("proposal", 1, Decimal("50.0")), ("negotiation", 0, Decimal("0.0")),
        ("won", 1, None),  # won straight from proposal: counted, but no conversion from an empty step
    ]
    assert stats.table.overall == Decimal("20.0")
    assert dict(stats.lost) == {"lost": 3}
    assert stats.lost_reasons == (("too_expensive", 2), ("no_budget", 1))
    assert dict(stats.side) == {"nurture": 1}


async def test_a_skipped_stage_counts_only_where_the_lead_was(db, funnel, built):
    async with db.session() as s:
        c = utc(2026, 10, 7, 8)
        await add_lead(s, c, ["new", "qualified", "contacted", "negotiation", "won"])  # skipped proposal
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal", "negotiation"])
        await built(s)
    async with db.session() as s:
        stats = await queries.stats(s, funnel, OCTOBER)
    assert chain_of(stats) == [
        ("new", 2, None), ("qualified", 2, Decimal("100.0")), ("contacted", 2, Decimal("100.0")),
        ("proposal", 1, Decimal("50.0")), ("negotiation", 2, Decimal("200.0")), ("won", 1, Decimal("50.0")),
    ]
    assert stats.table.overall == Decimal("50.0")
    assert (stats.table.leak.from_stage, stats.table.leak.to_stage, stats.table.leak.lost) == \
        ("contacted", "proposal", 1)


async def test_an_empty_period_has_zeros_and_no_errors(db, funnel, built):
    async with db.session() as s:
        await add_lead(s, utc(2026, 9, 1), ["new", "qualified"])
        await built(s)
    async with db.session() as s:
        stats = await queries.stats(s, funnel, OCTOBER)
        sources = await queries.sources(s, funnel, OCTOBER)
        managers = await queries.managers(s, OCTOBER)
        drop = await queries.dropoff(s, funnel, OCTOBER)
    assert stats.total == 0 and stats.table.overall is None and stats.table.leak is None
    assert all(r.conversion is None for r in stats.table.rows)
    assert stats.lost_reasons == () and stats.pipeline.open == 0
    assert stats.pipeline.expected_deals == Decimal("0.00") and stats.pipeline.weighted_amount == Decimal("0.00")
    assert all(m.seconds is None for m in stats.medians.values())
    assert sources == [] and managers == [] and drop.started == 0 and drop.completion is None


async def test_median_time_in_stage_is_exact(db, funnel, built):
    async with db.session() as s:
        c = utc(2026, 10, 3, 10)
        # hours spent in "qualified": 2, 4, 10 -> median 4; in "contacted": 24, 48 -> median 36
        await add_lead(s, c, [("new", 0), ("qualified", 0.5), ("contacted", 2), ("proposal", 24)])
        await add_lead(s, c, [("new", 0), ("qualified", 0.5), ("contacted", 4), ("lost", 48)], reason="competitor")
        await add_lead(s, c, [("new", 0), ("qualified", 0.5), ("lost", 10)], reason="competitor")
        await add_lead(s, c, [("new", 0), ("qualified", 0.5)])  # still in qualified: not counted
        await built(s)
    async with db.session() as s:
        stats = await queries.stats(s, funnel, OCTOBER)
    medians = stats.medians
    assert medians["new"].seconds == 1800 and medians["new"].count == 4
    assert medians["qualified"].seconds == 4 * 3600 and medians["qualified"].count == 3
    assert medians["contacted"].seconds == 36 * 3600 and not medians["contacted"].approximate
    assert medians["negotiation"].seconds is None


async def test_weighted_pipeline_uses_stage_probability_and_amounts(db, funnel, built):
    async with db.session() as s:
        c = utc(2026, 10, 12, 10)
        await add_lead(s, c, ["new", "qualified"], amount="1000")  # 20 %
        await add_lead(s, c, ["new", "qualified"])  # no amount: counts 0 in the amount
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal"], amount="2000.50")  # 50 %
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal", "negotiation"], amount="400")  # 75 %
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal", "won"], amount="9999")  # closed
        await add_lead(s, c, ["new", "nurture"], amount="5000")  # outside the active pipeline
        await built(s)
    async with db.session() as s:
        pipe = (await queries.stats(s, funnel, OCTOBER)).pipeline
    assert pipe.open == 4 and pipe.with_amount == 3
    assert pipe.expected_deals == Decimal("1.65")  # 2 x 0.20 + 0.50 + 0.75
    assert pipe.weighted_amount == Decimal("1500.25")  # 200 + 1000.25 + 300
    by_stage = {p.stage: (p.open, p.amount) for p in pipe.stages}
    assert by_stage["qualified"] == (2, Decimal(1000))
    assert by_stage["new"] == (0, Decimal(0))


async def test_per_source(db, funnel, built):
    async with db.session() as s:
        c = utc(2026, 10, 20, 10)
        for _ in range(4):
            await add_lead(s, c, ["new", "qualified"], source="ads_fb")
        await add_lead(s, c, ["new", "qualified", "contacted", "proposal", "won"], source="ads_fb")
        await add_lead(s, c, ["new", "nurture"], source="referral")
        await add_lead(s, c, ["new", "qualified", "lost"], source="referral", reason="not_a_fit")
        await built(s)
    async with db.session() as s:
        items = await queries.sources(s, funnel, OCTOBER)
    assert [i.source for i in items] == ["ads_fb", "referral"]
    fb, ref = items
    assert [r.reached for r in fb.table.rows] == [5, 5, 1, 1, 0, 1]
    assert fb.table.overall == Decimal("20.0") and fb.lost == 0
    assert [r.reached for r in ref.table.rows] == [2, 1, 0, 0, 0, 0]
    assert ref.table.rows[1].conversion == Decimal("50.0") and ref.lost == 1


async def test_per_manager(db, funnel):
    async with db.session() as s:
        c = utc(2026, 10, 2, 10)
        ann, bob = (701, "Ann"), (702, "Bob")
        h = c + timedelta(minutes=10)
        await add_lead(s, c, ["new", "qualified", "contacted", "won"][:3] + ["proposal", "won"], manager=ann,
                       handed=h, assigned=h + timedelta(minutes=5), first_move=h + timedelta(minutes=30))
        await add_lead(s, c, ["new", "qualified", "lost"], reason="no_response", manager=ann, handed=h,
                       assigned=h + timedelta(minutes=15), first_move=h + timedelta(hours=2))
        await add_lead(s, c, ["new", "qualified", "contacted"], manager=ann, handed=h,
                       assigned=h + timedelta(minutes=25))
        await add_lead(s, c, ["new", "qualified", "lost"], reason="competitor", manager=bob, handed=h,
                       assigned=h + timedelta(minutes=1), first_move=h + timedelta(minutes=2))
        await add_lead(s, c, ["new", "qualified"], handed=h)  # nobody took it
        await s.commit()
    async with db.session() as s:
        items = await queries.managers(s, OCTOBER)
    assert [(m.name, m.taken, m.won, m.lost, m.win_rate) for m in items] == [
        ("Ann", 3, 1, 1, Decimal("50.0")), ("Bob", 1, 0, 1, Decimal("0.0"))]
    ann_stats = items[0]
    assert ann_stats.to_take == 15 * 60  # median of 5, 15, 25 minutes
    assert ann_stats.to_first_move == 75 * 60  # median of 30 min and 2 h
    assert items[1].to_take == 60 and items[1].to_first_move == 120


async def test_dropoff_from_dialogue_runs(db, funnel):
    keys = [s.key for s in funnel.steps]
    async with db.session() as s:
        t0 = utc(2026, 10, 9, 10)
        for _ in range(3):
            await add_run(s, t0, len(keys), "summary", completed=True)
        await add_run(s, t0, 0, "consent", declined=True)
        await add_run(s, t0, 0, "consent")
        await add_run(s, t0, 2, "phone")
        await add_run(s, t0, 2, "phone")
        await add_run(s, t0, 5, "budget")
        await add_run(s, t0, len(keys), "summary")  # saw the summary, never confirmed
        await add_run(s, utc(2026, 9, 9), 2, "phone")  # outside the period
        await s.commit()
    async with db.session() as s:
        drop = await queries.dropoff(s, funnel, OCTOBER)
    assert (drop.started, drop.declined, drop.completed, drop.completion) == (9, 1, 3, Decimal("33.3"))
    steps = {st.key: st for st in drop.steps}
    assert steps["consent"].reached == 9 and steps["consent"].stopped == 1
    assert steps["name"].reached == 7 and steps["name"].conversion == Decimal("77.8")
    assert steps["phone"].reached == 7 and steps["phone"].stopped == 2
    assert steps["email"].reached == 5
    assert steps["budget"].reached == 5 and steps["budget"].stopped == 1
    assert steps["timeline"].reached == 4
    assert steps["summary"].reached == 4 and steps["summary"].stopped == 1
    assert drop.worst.key == "phone"


async def test_period_boundaries_in_the_configured_time_zone(db, funnel, built):
    async with db.session() as s:
        await add_lead(s, utc(2026, 9, 30, 20, 59, 59), ["new"], source="before")  # 23:59:59 Sep 30 in Kyiv
        await add_lead(s, utc(2026, 9, 30, 21, 0, 0), ["new"], source="first")  # 00:00 Oct 1 in Kyiv
        await add_lead(s, utc(2026, 10, 31, 21, 59, 59), ["new"], source="last")  # 23:59:59 Oct 31 (UTC+2)
        await add_lead(s, utc(2026, 10, 31, 22, 0, 0), ["new"], source="after")  # 00:00 Nov 1 in Kyiv
        await built(s)
    async with db.session() as s:
        items = await queries.sources(s, funnel, OCTOBER)
        utc_month = await queries.sources(s, funnel, parse_period("2026-10", ZoneInfo("UTC"), NOW))
    assert sorted(i.source for i in items) == ["first", "last"]
    assert sorted(i.source for i in utc_month) == ["after", "last"]  # the same month in UTC


async def test_trend_per_local_day(db, funnel):
    async with db.session() as s:
        await add_lead(s, utc(2026, 10, 1, 21, 30), ["new", "qualified", "contacted", "proposal", "won"])  # Oct 2
        await add_lead(s, utc(2026, 10, 2, 20, 0), ["new"])  # Oct 2 23:00 local
        await add_lead(s, utc(2026, 10, 2, 21, 0), ["new"])  # Oct 3 00:00 local
        await s.commit()
    async with db.session() as s:
        points = await queries.trend(s, parse_period("2026-10-01..2026-10-04", KYIV, NOW), KYIV)
        months = await queries.trend(s, ALL, KYIV)
    assert [(p.label, p.leads, p.won) for p in points] == [
        ("01.10", 0, 0), ("02.10", 2, 1), ("03.10", 1, 0), ("04.10", 0, 0)]
    assert [(p.label, p.leads) for p in months] == [("02.10", 2), ("03.10", 1)]


async def test_summary_and_raw_agree_on_random_histories(db, funnel):
    """Random leads over three months, periods with edges in Kyiv: the summary path (whole months,
    whole days, raw edges) gives exactly what the raw history gives; the tracking hook builds the
    same tables as a rebuild."""
    rng = random.Random(5)
    async with db.session() as s:
        for _ in range(400):
            created = utc(2026, 8, 1) + timedelta(seconds=rng.uniform(0, 92 * 86400))
            path = [("new", 0.0)]
            stage = "new"
            while stage not in ("won", "lost") and rng.random() < 0.75:
                options = {"new": ["qualified", "nurture"], "nurture": ["qualified", "lost"],
                           "qualified": ["contacted", "lost"], "contacted": ["proposal", "negotiation", "lost"],
                           "proposal": ["negotiation", "won", "lost"], "negotiation": ["won", "lost", "proposal"]}
                stage = rng.choice(options[stage])
                path.append((stage, rng.uniform(0.01, 200)))
            await add_lead(s, created, path, source=rng.choice(["a", "b", "c"]),
                           reason=rng.choice(["competitor", "no_budget"]))
        await s.commit()
    tables = (ReachedDaily, ReachedMonthly, StayDaily, StayMonthly)

    async def snapshot(session) -> list:
        out = []
        for table in tables:
            rows = (await session.execute(select(table))).scalars().all()
            cols = [c.key for c in table.__table__.columns]
            out.append(sorted(tuple(getattr(r, c) for c in cols) for r in rows))
        return out

    async with db.session() as s:
        tracked = await snapshot(s)
        await rebuild(s)
        await s.commit()
        assert await snapshot(s) == tracked
    periods = ["2026-08", "2026-09", "2026-08-15..2026-10-03", "2026-09-10", "all", "2026-08-01..2026-10-31"]
    async with db.session() as s:
        for text in periods:
            period = parse_period(text, KYIV, NOW)
            fast = await queries.reached(s, period, use_summary=True)
            slow = await queries.reached(s, period, use_summary=False)
            assert {k: dict(v) for k, v in fast.by_source.items()} == \
                {k: dict(v) for k, v in slow.by_source.items()}, text
            assert dict(fast.lost_reasons) == dict(slow.lost_reasons), text
            a = await queries.stats(s, funnel, period, use_summary=True)
            b = await queries.stats(s, funnel, period, use_summary=False)
            assert a.table == b.table and a.lost_reasons == b.lost_reasons and a.side == b.side, text


async def test_histogram_medians_are_close_to_the_exact_ones(db, funnel, monkeypatch):
    rng = random.Random(9)
    async with db.session() as s:
        for _ in range(300):
            created = utc(2026, 10, 1) + timedelta(seconds=rng.uniform(0, 30 * 86400))
            await add_lead(s, created, [("new", 0), ("qualified", rng.uniform(0.01, 3)),
                                        ("contacted", rng.expovariate(1 / 20))])
        await rebuild(s)
        await s.commit()
    async with db.session() as s:
        exact = (await queries.stats(s, funnel, OCTOBER)).medians
        monkeypatch.setattr(queries, "EXACT_MEDIAN_ROWS", 10)
        approx = (await queries.stats(s, funnel, OCTOBER)).medians
    for stage in ("new", "qualified"):
        assert approx[stage].approximate and not exact[stage].approximate
        assert approx[stage].count == exact[stage].count
        assert abs(approx[stage].seconds - exact[stage].seconds) <= 0.1 * exact[stage].seconds


async def test_through_the_lead_services(db, funnel):
    """Real submit/move_stage calls write stage_reached; the figures follow (raw path: no marker)."""
    from bot.db.models import Prospect
    from bot.services import leads

    serious = {"need": "product", "budget": "5k_20k", "timeline": "asap", "customer_type": "b2b",
               "company_size": "11_50", "decision_role": "decision_maker"}
    async with db.session() as s:
        ids = []
        for i in range(3):
            p = Prospect(tg_id=5000 + i, chat_id=5000 + i, name=f"P{i}", phone="+380671234567", phone_verified=True)
            s.add(p)
            await s.flush()
            sub = await leads.submit(s, funnel, p, serious if i < 2 else {}, source="ads_fb", locale="en")
            ids.append(sub.lead.id)
        ann = leads.Actor(701, "Ann")
        assert (await leads.assign(s, ids[0], ann)).ok
        assert (await leads.move_stage(s, funnel, ids[0], expected="qualified", to="contacted", actor=ann)).ok
        assert (await leads.move_stage(s, funnel, ids[0], expected="contacted", to="lost", actor=ann,
                                       reason="competitor")).ok
        await s.commit()
    period = parse_period("all", KYIV, NOW)
    async with db.session() as s:
        stats = await queries.stats(s, funnel, period, use_summary=False)
        managers = await queries.managers(s, period)
    assert chain_of(stats)[:3] == [("new", 3, None), ("qualified", 2, Decimal("66.7")),
                                   ("contacted", 1, Decimal("50.0"))]
    assert dict(stats.side) == {"nurture": 1} and dict(stats.lost) == {"lost": 1}
    assert stats.lost_reasons == (("competitor", 1),)
    assert [(m.name, m.taken, m.lost) for m in managers] == [("Ann", 1, 1)]


@pytest.mark.skipif("track_stage_change" not in inspect.getsource(
    __import__("bot.services.leads", fromlist=["mark_reached"]).mark_reached),
    reason="the summary hook is not wired into bot.services.leads.mark_reached yet")
async def test_the_hook_in_mark_reached_keeps_the_summary_in_step(db, funnel):
    from bot.db.models import Prospect
    from bot.services import leads

    async with db.session() as s:
        p = Prospect(tg_id=6000, chat_id=6000, name="P", phone="+380671234567", phone_verified=True)
        s.add(p)
        await s.flush()
        sub = await leads.submit(s, funnel, p, {}, source="direct", locale="en")
        await leads.move_stage(s, funnel, sub.lead.id, expected="nurture", to="lost", actor=leads.Actor(1, "A"),
                               reason="no_budget")
        await s.commit()
    async with db.session() as s:
        tracked = sorted((r.stage, r.reason, r.reached) for r in (await s.scalars(select(ReachedDaily))).all())
        await rebuild(s)
        rebuilt = sorted((r.stage, r.reason, r.reached) for r in (await s.scalars(select(ReachedDaily))).all())
    assert tracked == rebuilt == [("lost", "no_budget", 1), ("new", "", 1), ("nurture", "", 1)]
