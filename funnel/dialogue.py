"""The dialogue step engine: which question comes next, Back, Edit, the summary.

Pure functions over a :class:`~funnel.model.Funnel` and a plain ``answers`` dict
(step key -> option key for choice steps, the text otherwise).  No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from funnel.model import Funnel, Option, Step

__all__ = ["SKIPPED", "Dialogue", "TextCheck", "check_text", "option_for"]

TextCheck = Literal["ok", "empty", "too_long"]

#: Shown in the summary for an optional step the prospect skipped.
SKIPPED = "—"


def check_text(step: Step, text: str | None) -> TextCheck:
    """Check a free-text answer: stripped, non-empty and at most ``step.max_length`` characters."""
    cleaned = (text or "").strip()
    if not cleaned:
        return "empty"
    if len(cleaned) > step.max_length:
        return "too_long"
    return "ok"


def option_for(step: Step, key: str | None) -> Option | None:
    """The option of a choice step with this key, or None."""
    if key is None:
        return None
    return step.option(key)


VISIBILITY_KEPT = 1024  # show_if on typed answers could make the combinations endless


class Dialogue:
    """Navigation through the funnel's steps, honouring ``show_if`` conditions."""

    def __init__(self, funnel: Funnel) -> None:
        self.funnel = funnel
        self._index = {step.key: i for i, step in enumerate(funnel.steps)}
        # which steps are visible depends only on the answers to the steps some show_if names: decided
        # once per combination of those (an answer asks it four times), up to VISIBILITY_KEPT of them
        self._parents = tuple(sorted({parent for step in funnel.steps for parent in step.show_if}))
        self._visible: dict[tuple[str | None, ...], frozenset[str]] = {}

    # ------------------------------------------------------------------ visibility

    def _visible_keys(self, answers: Mapping[str, str]) -> frozenset[str]:
        key = tuple(answers.get(parent) for parent in self._parents)
        visible = self._visible.get(key)
        if visible is None:
            visible = self._decide_visible(answers)
            if len(self._visible) < VISIBILITY_KEPT:
                self._visible[key] = visible
        return visible

    def _decide_visible(self, answers: Mapping[str, str]) -> frozenset[str]:
        # show_if only references earlier steps, so one forward pass decides everything.
        # A step whose parent is hidden is hidden too (its parent's answer is stale).
        visible: set[str] = set()
        for step in self.funnel.steps:
            if all(
                parent in visible and answers.get(parent) in allowed
                for parent, allowed in step.show_if.items()
            ):
                visible.add(step.key)
        return frozenset(visible)

    def is_visible(self, step_key: str, answers: Mapping[str, str]) -> bool:
        self._position(step_key)
        return step_key in self._visible_keys(answers)

    def visible_steps(self, answers: Mapping[str, str]) -> list[Step]:
        """The steps that apply with these answers, in file order."""
        visible = self._visible_keys(answers)
        return [step for step in self.funnel.steps if step.key in visible]

    def editable_steps(self, answers: Mapping[str, str]) -> list[Step]:
        """Steps the prospect may go back to from the summary: all visible ones except consent."""
        return [step for step in self.visible_steps(answers) if step.kind != "consent"]

    # ------------------------------------------------------------------ navigation

    def _position(self, step_key: str) -> int:
        try:
            return self._index[step_key]
        except KeyError:
            raise KeyError(f"unknown step {step_key!r}") from None

    def first_step(self) -> Step:
        """The consent step."""
        return self.funnel.steps[0]

    def next_step(self, current: str | None, answers: Mapping[str, str]) -> Step | None:
        """The step after ``current`` (the first step if None); None means: show the summary."""
        if current is None:
            return self.first_step()
        position = self._position(current)
        visible = self._visible_keys(answers)
        for step in self.funnel.steps[position + 1 :]:
            if step.key in visible:
                return step
        return None

    def previous_step(self, current: str, answers: Mapping[str, str]) -> Step | None:
        """The visible step before ``current`` for the Back button.

        None when there is nothing to go back to: at the consent step and at the first question
        after it (consent is never re-asked).
        """
        position = self._position(current)
        visible = self._visible_keys(answers)
        for step in reversed(self.funnel.steps[:position]):
            if step.key in visible:
                return None if step.kind == "consent" else step
        return None

    def progress(self, step_key: str) -> int:
        """Index of the step in ``funnel.steps`` (used for drop-off analytics)."""
        return self._position(step_key)

    def prune(self, answers: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``answers`` without the answers of steps that are no longer visible.

        Keys that are not step keys are kept unchanged.
        """
        visible = self._visible_keys(answers)
        return {k: v for k, v in answers.items() if k not in self._index or k in visible}

    def is_complete(self, answers: Mapping[str, str]) -> bool:
        """True when every visible, non-optional step has an answer."""
        return all(
            answers.get(step.key) not in (None, "")
            for step in self.visible_steps(answers)
            if not step.optional
        )

    # ------------------------------------------------------------------ presentation

    def answer_label(self, step: Step, answer: str | None, locale: str | None) -> str:
        """Human form of one answer: the option label for choice steps, the text otherwise."""
        if answer is None or answer == "":
            return SKIPPED
        if step.kind == "choice":
            option = step.option(answer)
            return self.funnel.label(option.label, locale) if option else answer
        return answer

    def summary(self, answers: Mapping[str, str], locale: str | None) -> list[tuple[str, str]]:
        """(step title, human answer) for each visible answered step (consent excluded).

        Skipped optional steps show ``"—"``; unanswered required steps are left out.
        """
        rows: list[tuple[str, str]] = []
        for step in self.visible_steps(answers):
            if step.kind == "consent":
                continue
            answer = answers.get(step.key)
            if (answer is None or answer == "") and not step.optional:
                continue
            rows.append((self.funnel.label(step.title, locale), self.answer_label(step, answer, locale)))
        return rows
