"""bot/lazy_types.py: aiogram's models built on first use are the same models, and every one of them builds.

Each check runs in a fresh interpreter, because the switch works only before aiogram is imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every Bot API type and method, built and described; prints one JSON object.
PROBE = r"""
import json, re, sys
import bot  # installs the lazy builds unless LEADBOT_EAGER_TYPES=1
import bot.lazy_types
import aiogram.methods as methods
import aiogram.types as types
from aiogram.methods.base import Response
from pydantic import BaseModel
from pydantic_core import SchemaValidator

out = {"lazy": bot.lazy_types._installed, "built_at_import": 0, "schemas": {}, "not_built": []}
classes = []
for module in (types, methods):
    for attr in module.__all__:
        cls = getattr(module, attr)
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            classes.append((f"{module.__name__}.{attr}", cls))
out["built_at_import"] = sum(1 for _, c in classes if c.__pydantic_complete__)
out["classes"] = len(classes)
def described(schema_of):
    try:
        return schema_of()
    except Exception as exc:  # a few types hold arbitrary Python objects (files): the error must match too
        return re.sub(r" at 0x[0-9a-f]+", "", f"{type(exc).__name__}: {exc}")
for name, cls in classes:
    cls.__pydantic_validator__.title  # what any use does: a deferred model is built here
    if not isinstance(cls.__pydantic_validator__, SchemaValidator):
        out["not_built"].append(name)
        continue
    out["schemas"][name] = described(cls.model_json_schema)
    returning = getattr(cls, "__returning__", None)
    if returning is not None:
        out["schemas"][name + " -> response"] = described(lambda: Response[returning].model_json_schema())
print(json.dumps(out, sort_keys=True, default=str))
"""


def _probe(eager: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LEADBOT_EAGER_TYPES"}
    if eager:
        env["LEADBOT_EAGER_TYPES"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def lazy() -> dict:
    return _probe(eager=False)


@pytest.fixture(scope="module")
def eager() -> dict:
    return _probe(eager=True)


def test_importing_the_bot_no_longer_builds_every_type(lazy: dict, eager: dict) -> None:
    assert lazy["lazy"] is True and eager["lazy"] is False
    assert eager["built_at_import"] == eager["classes"] > 450  # aiogram built every type and method
    assert lazy["built_at_import"] < lazy["classes"] / 50


def test_every_type_and_method_builds_on_first_use(lazy: dict) -> None:
    assert lazy["not_built"] == []
    assert len(lazy["schemas"]) > 400


def test_the_lazily_built_models_are_the_eagerly_built_ones(lazy: dict, eager: dict) -> None:
    assert lazy["schemas"].keys() == eager["schemas"].keys()
    differ = [name for name in lazy["schemas"] if lazy["schemas"][name] != eager["schemas"][name]]
    assert differ == []
