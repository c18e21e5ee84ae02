"""Typed callback data. Ids and indexes only, never personal data; every payload fits in 64 bytes
(`tests/test_callbacks.py` checks the worst case)."""
from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class AnswerCb(CallbackData, prefix="a"):
    """An answer to a choice step: the step key (<= 32 chars) and the option's index."""

    step: str
    idx: int


class NavCb(CallbackData, prefix="n"):
    """Dialogue navigation: consent_yes, consent_no, back, skip, confirm, edit, edit_step, update, keep."""

    action: str
    step: str = ""


class MenuCb(CallbackData, prefix="m"):
    """An item of the funnel's after-dialogue menu (by index)."""

    idx: int


class LangCb(CallbackData, prefix="l"):
    code: str


class ForgetCb(CallbackData, prefix="f"):
    confirm: bool


class LeadCb(CallbackData, prefix="L"):
    """A staff card button. `at` is the stage index the card showed (a stale card is detected),
    `to` the target stage index, `reason` a lost reason index.
    actions: t = take, m = move, l = open the lost-reason picker, x = lost with reason, b = back to card."""

    action: str
    lead: int
    at: int = -1
    to: int = -1
    reason: int = -1
