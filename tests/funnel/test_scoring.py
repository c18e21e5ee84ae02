from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from funnel import EXAMPLE_FUNNELS, QUICK_ANSWERS_SIGNAL, Funnel, ScoreResult, score_lead
from tests.funnel import shipped

SERIOUS = {
    "consent": "yes",
    "name": "Ann",
    "phone": "+380671234567",
    "need": "product",
    "budget": "5k_20k",
    "timeline": "asap",
    "customer_type": "b2b",
    "company_size": "11_50",
    "decision_role": "decision_maker",
}
BROWSING = {
    "consent": "yes",
    "name": "Bob",
    "phone": "+380671234567",
    "need": "other",
    "budget": "lt_1k",
    "timeline": "exploring",
    "customer_type": "b2c",
}


def opt(f: Funnel, step: str, key: str):
    return f.step(step).option(key)


def with_scoring(f: Funnel, **changes) -> Funnel:
    """A copy of the funnel with some scoring fields replaced (validated structure is unchanged)."""
    return f.model_copy(update={"scoring": f.scoring.model_copy(update=changes)})


def test_serious_prospect_breakdown_exact() -> None:
    f = shipped()
    s = f.scoring
    result = score_lead(
        f,
        answers=SERIOUS,
        phone_verified=True,
        has_email=True,
        source="ads_fb",
        signals=["book_demo", "price_list", "book_demo"],  # book_demo twice: counted once
        dialogue_seconds=s.quick_answer_seconds + 1,  # not quick
    )
    # Expected values come from the file: every option's fit + intent, then contact, source, signals.
    answer_rules = [
        (f"answer:{step}={SERIOUS[step]}", opt(f, step, SERIOUS[step]))
        for step in ("need", "budget", "timeline", "customer_type", "company_size", "decision_role")
    ]
    expected_breakdown = [(rule, o.fit + o.intent) for rule, o in answer_rules if o.fit or o.intent]
    expected_breakdown += [
        ("phone:verified", s.phone_verified),
        ("email", s.email),
        ("source:ads_fb", s.sources["ads_fb"]),
        # signals in the order of [scoring.signals] in the file: price_list comes before book_demo
        ("signal:price_list", s.signals["price_list"]),
        ("signal:book_demo", s.signals["book_demo"]),
    ]
    assert list(result.breakdown) == expected_breakdown

    fit = sum(o.fit for _, o in answer_rules) + s.phone_verified + s.email + s.sources["ads_fb"]
    intent = sum(o.intent for _, o in answer_rules) + s.signals["price_list"] + s.signals["book_demo"]
    assert (result.fit, result.intent) == (fit, intent)
    assert result.total == round(fit * s.fit_weight + intent * s.intent_weight)
    assert result.qualified and result.band == "hot"


def test_serious_prospect_qualifies_without_any_extras() -> None:
    # Decent budget, soon, decision maker, phone typed by hand, no email, direct, no menu clicks.
    result = score_lead(shipped(), answers=SERIOUS, phone_verified=False, has_email=False, source="direct")
    assert result.qualified
    # and a B2C buyer with a mid budget who wants to start this month
    b2c = {**BROWSING, "need": "product", "budget": "1k_5k", "timeline": "this_month"}
    assert score_lead(shipped(), answers=b2c, phone_verified=True, has_email=False, source="direct").qualified


def test_browsing_prospect_is_not_qualified() -> None:
    f = shipped()
    s = f.scoring
    result = score_lead(f, answers=BROWSING, phone_verified=True, has_email=True, source="direct")
    # All four answers are worth 0 points in the file; only contact details count.
    assert all(
        not (opt(f, k, v).fit or opt(f, k, v).intent) for k, v in BROWSING.items() if f.step(k).options
    )
    assert result.breakdown == (("phone:verified", s.phone_verified), ("email", s.email))
    assert result.total == s.phone_verified + s.email
    assert not result.qualified
    assert result.band == "cold"


def test_phone_and_email_points() -> None:
    f = shipped()
    s = f.scoring

    def total(**kw) -> int:
        return score_lead(f, answers={}, source="direct", **kw).total

    assert total(phone_verified=None, has_email=False) == 0
    assert total(phone_verified=True, has_email=False) == s.phone_verified
    assert total(phone_verified=False, has_email=False) == s.phone_unverified
    assert total(phone_verified=None, has_email=True) == s.email
    rules = [
        r for r, _ in score_lead(f, answers={}, phone_verified=False, has_email=False, source="").breakdown
    ]
    assert rules == ["phone:unverified"]


def test_sources() -> None:
    f = shipped()
    s = f.scoring

    def source_rules(source):
        r = score_lead(f, answers={}, phone_verified=None, has_email=False, source=source)
        return list(r.breakdown), r.fit

    assert source_rules("direct") == ([], 0)
    assert source_rules("") == ([], 0)
    assert source_rules(None) == ([], 0)
    assert source_rules("referral") == ([("source:referral", s.sources["referral"])], s.sources["referral"])
    # "*" applies to any other non-direct source
    assert source_rules("newsletter") == ([("source:newsletter", s.sources["*"])], s.sources["*"])


def test_signals_count_once_and_unknown_ignored() -> None:
    f = shipped()
    s = f.scoring
    r = score_lead(
        f,
        answers={},
        phone_verified=None,
        has_email=False,
        source="direct",
        signals=["manager", "manager", "ask_question", "no_such_signal"],
    )
    assert r.intent == s.signals["manager"] + s.signals["ask_question"]
    assert [rule for rule, _ in r.breakdown] == ["signal:ask_question", "signal:manager"]
    assert r.fit == 0


def test_quick_answers_edge() -> None:
    f = shipped()
    s = f.scoring
    limit = s.quick_answer_seconds

    def quick(seconds, signals=()) -> int:
        r = score_lead(
            f,
            answers={},
            phone_verified=None,
            has_email=False,
            source="direct",
            signals=signals,
            dialogue_seconds=seconds,
        )
        return r.intent

    assert quick(limit) == s.signals[QUICK_ANSWERS_SIGNAL]  # == limit still counts
    assert quick(limit + 0.001) == 0
    assert quick(None) == 0
    assert quick(10, signals=[QUICK_ANSWERS_SIGNAL]) == s.signals[QUICK_ANSWERS_SIGNAL]  # still once


def test_hidden_answers_do_not_count() -> None:
    f = shipped()
    b2c_with_stale = {**BROWSING, "company_size": "250_plus", "decision_role": "decision_maker"}
    r = score_lead(f, answers=b2c_with_stale, phone_verified=None, has_email=False, source="direct")
    assert r.total == 0 and r.breakdown == ()


def test_unknown_option_keys_are_ignored() -> None:
    r = score_lead(
        shipped(), answers={"budget": "zillions"}, phone_verified=None, has_email=False, source="x"
    )
    assert [rule for rule, _ in r.breakdown] == ["source:x"]


def _lead_total(f: Funnel) -> int:
    return score_lead(f, answers=SERIOUS, phone_verified=True, has_email=False, source="direct").total


def test_threshold_edge() -> None:
    f = shipped()
    total = _lead_total(f)
    at = with_scoring(f, threshold=total)
    above = with_scoring(f, threshold=total + 1)
    assert score_lead(at, answers=SERIOUS, phone_verified=True, has_email=False, source="direct").qualified
    assert not score_lead(
        above, answers=SERIOUS, phone_verified=True, has_email=False, source="direct"
    ).qualified


def test_default_threshold_edge_with_contact_points() -> None:
    # With no answers, only contact/source/signal points count; build exactly threshold and threshold - 1.
    f = shipped()
    s = f.scoring
    base = {"answers": {}, "phone_verified": True, "has_email": True, "source": "direct"}
    contact = s.phone_verified + s.email
    # threshold 50 = 15 + 5 + book_demo 20 + manager 10 in the shipped file
    signals = ["book_demo", "manager"]
    assert contact + s.signals["book_demo"] + s.signals["manager"] == s.threshold
    r = score_lead(f, signals=signals, **base)
    assert r.total == s.threshold and r.qualified
    r = score_lead(f, signals=["book_demo", "ask_question"], **base)
    assert r.total == s.threshold - s.signals["manager"] + s.signals["ask_question"]
    assert not r.qualified


def test_band_edges() -> None:
    f = shipped()
    bands = f.scoring.bands
    for lower, upper in itertools.pairwise(bands):
        assert f.scoring.band(upper.min_score - 1).key == lower.key
        assert f.scoring.band(upper.min_score).key == upper.key
    assert f.scoring.band(-5).key == bands[0].key
    assert f.scoring.band(10_000).key == bands[-1].key

    # and through score_lead: move the "warm" edge onto the lead's total
    total = _lead_total(f)
    warm_at = [b.model_copy(update={"min_score": total}) if b.key == "warm" else b for b in bands[:2]]
    warm_above = [b.model_copy(update={"min_score": total + 1}) if b.key == "warm" else b for b in bands[:2]]
    kw = {"answers": SERIOUS, "phone_verified": True, "has_email": False, "source": "direct"}
    assert score_lead(with_scoring(f, bands=warm_at), **kw).band == "warm"
    assert score_lead(with_scoring(f, bands=warm_above), **kw).band == "cold"


def test_weights() -> None:
    f = with_scoring(shipped(), fit_weight=0.5, intent_weight=2.0)
    r = score_lead(f, answers=SERIOUS, phone_verified=True, has_email=True, source="direct")
    assert r.total == round(r.fit * 0.5 + r.intent * 2.0)


def test_as_dict_is_json_friendly() -> None:
    r = score_lead(shipped(), answers=SERIOUS, phone_verified=True, has_email=True, source="ads_fb")
    d = r.as_dict()
    assert set(d) == {"fit", "intent", "total", "band", "qualified", "breakdown"}
    assert json.loads(json.dumps(d)) == d
    assert d["breakdown"] == [list(item) for item in r.breakdown]
    assert isinstance(r, ScoreResult)


# ---------------------------------------------------------------------------- property


@st.composite
def lead_inputs(draw):
    name = draw(st.sampled_from(sorted(EXAMPLE_FUNNELS)))
    f = shipped(name)
    answers: dict[str, str] = {}
    for step in f.steps:
        if draw(st.booleans()):
            if step.options and draw(st.integers(0, 4)):
                answers[step.key] = draw(st.sampled_from([o.key for o in step.options]))
            else:
                answers[step.key] = draw(st.text(max_size=20))
    extra = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
    answers = {**extra, **answers}
    signals = draw(st.lists(st.sampled_from(sorted(f.known_signals)) | st.text(max_size=12), max_size=8))
    weights = draw(st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 5, allow_nan=False)))
    f = with_scoring(f, fit_weight=weights[0], intent_weight=weights[1])
    return {
        "funnel": f,
        "answers": answers,
        "phone_verified": draw(st.sampled_from([None, True, False])),
        "has_email": draw(st.booleans()),
        "source": draw(st.sampled_from(["direct", "", "referral", "ads_fb"]) | st.text(max_size=15)),
        "signals": signals,
        "dialogue_seconds": draw(st.none() | st.floats(0, 10_000, allow_nan=False)),
    }


@settings(max_examples=300, deadline=None)
@given(lead_inputs())
def test_score_lead_property(kw) -> None:
    f: Funnel = kw.pop("funnel")
    r = score_lead(f, **kw)
    s = f.scoring
    assert r.total == round(r.fit * s.fit_weight + r.intent * s.intent_weight)
    assert r.qualified == (r.total >= s.threshold)
    assert r.band == s.band(r.total).key
    assert r.band in {b.key for b in s.bands}
    # breakdown entries are unique rules and never zero
    rules = [rule for rule, _ in r.breakdown]
    assert len(rules) == len(set(rules))
    assert all(points != 0 for _, points in r.breakdown)
    # the (raw, unweighted) breakdown adds up to fit + intent
    assert sum(p for _, p in r.breakdown) == r.fit + r.intent
    assert json.loads(json.dumps(r.as_dict())) == r.as_dict()
