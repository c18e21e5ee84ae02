from __future__ import annotations

import pytest

from funnel import (
    EXAMPLE_FUNNELS,
    Funnel,
    ScoreResult,
    TransitionError,
    allowed_moves,
    can_move,
    check_move,
    is_open,
    place,
    score_lead,
    weighted_value,
)
from tests.funnel import shipped


def test_allowed_moves_in_to_order() -> None:
    f = shipped()
    for stage in f.stages:
        assert [s.key for s in allowed_moves(f, stage.key)] == stage.to
    assert [s.key for s in allowed_moves(f, "new")] == ["qualified", "nurture", "lost"]
    assert allowed_moves(f, "won") == [] and allowed_moves(f, "lost") == []
    with pytest.raises(KeyError):
        allowed_moves(f, "nope")


def test_can_move() -> None:
    f = shipped()
    assert can_move(f, "new", "qualified")
    assert can_move(f, "qualified", "contacted")
    assert can_move(f, "nurture", "qualified")
    assert not can_move(f, "new", "won")  # skipping the pipeline is not allowed
    assert not can_move(f, "won", "lost")  # terminal
    assert not can_move(f, "lost", "nurture")
    assert not can_move(f, "new", "new")
    assert not can_move(f, "new", "nope") and not can_move(f, "nope", "new")


def test_check_move_allowed_and_refused() -> None:
    f = shipped()
    check_move(f, "proposal", "negotiation")
    check_move(f, "negotiation", "won")
    with pytest.raises(TransitionError, match="not allowed from new to won") as info:
        check_move(f, "new", "won")
    assert info.value.code == "not_allowed"
    with pytest.raises(TransitionError, match="not allowed from won to lost"):
        check_move(f, "won", "lost", lost_reason="no_budget")
    with pytest.raises(TransitionError, match="unknown stage 'nope'") as info:
        check_move(f, "new", "nope")
    assert info.value.code == "unknown_stage"
    assert isinstance(info.value, ValueError)


def test_lost_needs_a_known_reason() -> None:
    f = shipped()
    with pytest.raises(TransitionError, match="lost needs a reason") as info:
        check_move(f, "proposal", "lost")
    assert info.value.code == "needs_reason"
    with pytest.raises(TransitionError, match="lost needs a reason"):
        check_move(f, "proposal", "lost", lost_reason="")
    with pytest.raises(TransitionError, match="unknown lost reason 'cheaper'") as info:
        check_move(f, "proposal", "lost", lost_reason="cheaper")
    assert info.value.code == "bad_reason"
    for reason in f.lost_reasons:
        check_move(f, "proposal", "lost", lost_reason=reason.key)
    # a reason is not needed (and ignored) for other moves
    check_move(f, "proposal", "negotiation", lost_reason="no_budget")


def _result(qualified: bool) -> ScoreResult:
    return ScoreResult(fit=0, intent=0, total=0, band="cold", qualified=qualified, breakdown=())


@pytest.mark.parametrize("name", sorted(EXAMPLE_FUNNELS))
def test_place(name: str) -> None:
    f = shipped(name)
    assert place(f, _result(True)) == f.qualified_stage
    assert place(f, _result(False)) == f.nurture_stage


def test_place_with_real_scores() -> None:
    f = shipped()
    serious = {"need": "product", "budget": "5k_20k", "timeline": "asap", "customer_type": "b2c"}
    browsing = {"need": "other", "budget": "lt_1k", "timeline": "exploring", "customer_type": "b2c"}
    kw = {"phone_verified": True, "has_email": False, "source": "direct"}
    assert place(f, score_lead(f, answers=serious, **kw)) == "qualified"
    assert place(f, score_lead(f, answers=browsing, **kw)) == "nurture"


def test_is_open() -> None:
    f = shipped()
    assert {s.key for s in f.stages if is_open(f, s.key)} == {
        "new",
        "qualified",
        "contacted",
        "proposal",
        "negotiation",
        "nurture",
    }
    assert all(is_open(f, s.key) == (not s.terminal) for s in f.stages)
    b2b = shipped("b2b")
    assert not is_open(b2b, "deal")  # won, even though it may still move to post_sale_support
    assert not is_open(b2b, "post_sale_support")
    assert is_open(b2b, "agreement")


def test_weighted_value() -> None:
    f = shipped()
    for stage in f.stages:
        assert weighted_value(f, stage.key, 10_000) == pytest.approx(10_000 * stage.probability / 100)
    assert weighted_value(f, "won", 1234.5) == pytest.approx(1234.5)
    assert weighted_value(f, "lost", 1000) == 0
    assert isinstance(weighted_value(f, "proposal", 3), float)


def test_nurture_is_not_active() -> None:
    f = shipped()
    assert not f.stage(f.nurture_stage).active
    assert all(f.stage(k).active for k in ("new", "qualified", "contacted", "proposal", "negotiation"))


def _reachable(f: Funnel, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in f.stage(todo.pop()).to:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("name", sorted(EXAMPLE_FUNNELS))
def test_every_open_stage_can_be_won_or_lost(name: str) -> None:
    f = shipped(name)
    won = {s.key for s in f.stages if s.outcome == "won"}
    lost = {s.key for s in f.stages if s.outcome == "lost"}
    for stage in f.stages:
        if is_open(f, stage.key):
            reach = _reachable(f, stage.key)
            assert reach & won, stage.key
            assert reach & lost, stage.key
    # every stage is reachable from the initial stage (or is the nurture stage reached by placement)
    reach = _reachable(f, f.initial_stage) | _reachable(f, f.qualified_stage) | _reachable(f, f.nurture_stage)
    assert reach == {s.key for s in f.stages}
    # signal moves point at open stages
    assert all(is_open(f, target) for target in f.signal_moves.values())
