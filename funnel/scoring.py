"""Lead scoring: fit (who they are) + intent (how ready they are) -> total, band, qualified.

* Answer options carry ``fit`` and/or ``intent`` points (only answers of visible steps count).
* Phone (verified / unverified), email and the traffic source add to **fit**.
* Behaviour signals (menu actions, ``quick_answers``) add to **intent**; each signal counts once.
* ``total = round(fit * fit_weight + intent * intent_weight)``; ``band`` is the highest band with
  ``min_score <= total``; ``qualified`` is ``total >= threshold``.

Breakdown points are the raw (unweighted) points of each rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from funnel.dialogue import Dialogue
from funnel.model import QUICK_ANSWERS_SIGNAL, Funnel

__all__ = ["DIRECT_SOURCE", "ScoreResult", "score_lead"]

#: The source of prospects who opened the bot without a deep-link payload.
DIRECT_SOURCE = "direct"


@dataclass(frozen=True)
class ScoreResult:
    fit: int
    intent: int
    total: int
    band: str
    qualified: bool
    breakdown: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "fit": self.fit,
            "intent": self.intent,
            "total": self.total,
            "band": self.band,
            "qualified": self.qualified,
            "breakdown": [[rule, points] for rule, points in self.breakdown],
        }


def score_lead(
    funnel: Funnel,
    *,
    answers: Mapping[str, str],
    phone_verified: bool | None,
    has_email: bool,
    source: str | None,
    signals: Iterable[str] = (),
    dialogue_seconds: float | None = None,
) -> ScoreResult:
    """Score one lead.  ``phone_verified`` None means the lead has no phone.

    Breakdown order: answers (in step order), phone, email, source, signals (in the order of
    ``scoring.signals`` in the file).  Rules worth 0 points are left out.
    """
    rules = funnel.scoring
    fit = 0
    intent = 0
    breakdown: list[tuple[str, int]] = []

    for step in Dialogue(funnel).visible_steps(answers):
        if step.kind != "choice":
            continue
        answer = answers.get(step.key)
        option = step.option(answer) if isinstance(answer, str) else None
        if option is None:
            continue
        fit += option.fit
        intent += option.intent
        if option.fit or option.intent:
            breakdown.append((f"answer:{step.key}={option.key}", option.fit + option.intent))

    contact: list[tuple[str, int]] = []
    if phone_verified is True:
        contact.append(("phone:verified", rules.phone_verified))
    elif phone_verified is False:
        contact.append(("phone:unverified", rules.phone_unverified))
    if has_email:
        contact.append(("email", rules.email))
    src = (source or "").strip() or DIRECT_SOURCE
    if src in rules.sources:
        contact.append((f"source:{src}", rules.sources[src]))
    elif src != DIRECT_SOURCE and "*" in rules.sources:
        contact.append((f"source:{src}", rules.sources["*"]))
    for rule, points in contact:
        fit += points
        if points:
            breakdown.append((rule, points))

    seen = {s for s in signals if isinstance(s, str)}
    if dialogue_seconds is not None and dialogue_seconds <= rules.quick_answer_seconds:
        seen.add(QUICK_ANSWERS_SIGNAL)
    for signal, points in rules.signals.items():
        if signal in seen:
            intent += points
            if points:
                breakdown.append((f"signal:{signal}", points))

    total = round(fit * rules.fit_weight + intent * rules.intent_weight)
    return ScoreResult(
        fit=fit,
        intent=intent,
        total=total,
        band=rules.band(total).key,
        qualified=total >= rules.threshold,
        breakdown=tuple(breakdown),
    )
