"""JSON for the Bot API's requests and answers and for the database's JSON columns: orjson, with the
standard library where orjson refuses what is still valid (a lone UTF-16 surrogate in a prospect's text,
an integer beyond 64 bits, a NaN written by an older version)."""
from __future__ import annotations

import json
from typing import Any

import orjson


def json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # valid JSON orjson refuses: a lone UTF-16 surrogate ("\ud800") in a prospect's text; one such
        # update must not make getUpdates unreadable (it becomes a dead letter, see the unit of work)
        return json.loads(text)


def json_dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson cannot encode (a lone surrogate, an int beyond 64 bits): as json does
        return json.dumps(value)
