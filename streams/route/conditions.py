"""Mongo-style conditions over a request ($eq, $in, $gt, $regex, $and, …), as routing users know them.

Fields are dotted paths into a flat view of the request: `model`, `team`, `project`, `prompt_chars`,
`stream`, `region`, `tags.<name>`, `metadata.<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from shared.guardrails.outcome import prompt_chars

_MISSING = object()


def request_view(event: dict[str, Any]) -> dict[str, Any]:
    params = event.get("params") or {}
    view: dict[str, Any] = {
        "model": event.get("model"), "team": event.get("team"), "project": event.get("project"),
        "region": event.get("region"), "stream": bool(params.get("stream")),
        "prompt_chars": prompt_chars(event), "messages": len(event.get("messages") or []),
    }
    for prefix in ("tags", "metadata"):
        for k, v in (event.get(prefix) or {}).items():
            view[f"{prefix}.{k}"] = v
    return view


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        try:
            return actual is not _MISSING and actual is not None and op(actual, expected)
        except TypeError:
            return False
    return check


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, e: a == e,
    "$ne": lambda a, e: a != e,
    "$in": lambda a, e: a in e,
    "$nin": lambda a, e: a not in e,
    "$gt": _cmp(lambda a, e: a > e),
    "$gte": _cmp(lambda a, e: a >= e),
    "$lt": _cmp(lambda a, e: a < e),
    "$lte": _cmp(lambda a, e: a <= e),
    "$regex": lambda a, e: isinstance(a, str) and _regex(e).search(a) is not None,
    "$exists": lambda a, e: (a is not _MISSING) == bool(e),
}


class ConditionError(ValueError):
    """A routing condition uses an operator that does not exist."""


def matches(condition: dict[str, Any], view: dict[str, Any]) -> bool:
    for key, expected in condition.items():
        if key == "$and":
            ok = all(matches(c, view) for c in expected)
        elif key == "$or":
            ok = any(matches(c, view) for c in expected)
        elif key == "$not":
            ok = not matches(expected, view)
        elif key.startswith("$"):
            raise ConditionError(f"unknown logical operator {key}")
        else:
            ok = _field_matches(view.get(key, _MISSING), expected)
        if not ok:
            return False
    return True


def _field_matches(actual: Any, expected: Any) -> bool:
    if not isinstance(expected, dict):
        return bool(actual == expected)
    for op, operand in expected.items():
        check = _OPS.get(op)
        if check is None:
            raise ConditionError(f"unknown operator {op}; known: {', '.join(sorted(_OPS))}")
        if not check(actual, operand):
            return False
    return True
