"""Stage transitions and automatic placement of scored leads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from funnel.model import Funnel, Stage

if TYPE_CHECKING:
    from funnel.scoring import ScoreResult

__all__ = [
    "TransitionError",
    "allowed_moves",
    "can_move",
    "check_move",
    "is_open",
    "place",
    "weighted_value",
]

TransitionCode = Literal["unknown_stage", "not_allowed", "needs_reason", "bad_reason"]


class TransitionError(ValueError):
    """A stage move that must not happen.  ``code`` tells which rule refused it."""

    def __init__(self, message: str, code: TransitionCode = "not_allowed") -> None:
        super().__init__(message)
        self.code: TransitionCode = code


def allowed_moves(funnel: Funnel, stage_key: str) -> list[Stage]:
    """Stages a lead in ``stage_key`` may be moved to, in the order of the stage's ``to`` list."""
    return [funnel.stage(key) for key in funnel.stage(stage_key).to]


def can_move(funnel: Funnel, from_key: str, to_key: str) -> bool:
    """True if ``from_key`` lists ``to_key`` in its ``to`` (unknown stages: False)."""
    if not (funnel.has_stage(from_key) and funnel.has_stage(to_key)):
        return False
    return to_key in funnel.stage(from_key).to


def check_move(funnel: Funnel, from_key: str, to_key: str, *, lost_reason: str | None = None) -> None:
    """Raise :class:`TransitionError` unless the manual move is allowed.

    A move into a stage with outcome "lost" needs a ``lost_reason`` that is one of
    ``funnel.lost_reasons``.
    """
    for key in (from_key, to_key):
        if not funnel.has_stage(key):
            raise TransitionError(f"unknown stage {key!r}", "unknown_stage")
    if not can_move(funnel, from_key, to_key):
        raise TransitionError(f"not allowed from {from_key} to {to_key}", "not_allowed")
    if funnel.stage(to_key).outcome == "lost":
        if not lost_reason:
            raise TransitionError("lost needs a reason", "needs_reason")
        if funnel.lost_reason(lost_reason) is None:
            raise TransitionError(f"unknown lost reason {lost_reason!r}", "bad_reason")


def place(funnel: Funnel, score: ScoreResult) -> str:
    """Where a lead goes when the dialogue is finished: qualified stage or nurture."""
    return funnel.qualified_stage if score.qualified else funnel.nurture_stage


def is_open(funnel: Funnel, stage_key: str) -> bool:
    """True while the deal is still open: the stage is not terminal and has no won/lost outcome.

    (A non-terminal stage with an outcome, e.g. a won "deal" that may continue to
    "post_sale_support", counts as closed.)
    """
    stage = funnel.stage(stage_key)
    return not stage.terminal and stage.outcome is None


def weighted_value(funnel: Funnel, stage_key: str, amount: float) -> float:
    """Expected value of a deal of ``amount`` in this stage: ``amount * probability / 100``."""
    return float(amount) * funnel.stage(stage_key).probability / 100
