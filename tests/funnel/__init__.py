"""Tests of the pure funnel domain package."""

from __future__ import annotations

import copy
import tomllib
from functools import cache
from typing import Any

from funnel import DEFAULT_FUNNEL_PATH, EXAMPLE_FUNNELS, Funnel, load_funnel


@cache
def shipped(name: str = "default") -> Funnel:
    """A shipped funnel file, loaded once (treat as read-only)."""
    return load_funnel(EXAMPLE_FUNNELS[name])


@cache
def _default_raw() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_FUNNEL_PATH.read_text(encoding="utf-8"))


def default_data() -> dict[str, Any]:
    """A fresh, mutable copy of default.toml as a dict (for building bad variants)."""
    return copy.deepcopy(_default_raw())
