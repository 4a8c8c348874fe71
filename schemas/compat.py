"""Avro schema-resolution compatibility, per the Avro specification's resolution rules.

`check_backward(old, new)` answers "can a consumer on NEW read every event written with OLD?" — the
promise that lets producers and consumers upgrade independently. It returns the reasons it cannot, each
with the path of the field at fault, so a failing check says what to fix.
"""

from __future__ import annotations

from typing import Any

_PROMOTIONS: dict[str, set[str]] = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
    "boolean": {"boolean"},
    "null": {"null"},
}


class _Names:
    """Named types seen so far (records, enums, fixed), so references by name resolve."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def resolve(self, schema: Any, namespace: str | None) -> Any:
        if isinstance(schema, str) and schema not in _PROMOTIONS:
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            return self.types.get(full, self.types.get(schema, schema))
        if isinstance(schema, dict) and schema.get("type") in ("record", "error", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name or not ns else f"{ns}.{name}"
            self.types.setdefault(full, schema)
            self.types.setdefault(name, schema)
        return schema


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        t = schema["type"]
        return t if isinstance(t, str) else _type_name(t)
    return str(schema)


def _short(schema: Any) -> str:
    return schema["name"].rsplit(".", 1)[-1] if isinstance(schema, dict) and "name" in schema else ""


def check_backward(old: dict[str, Any] | Any, new: dict[str, Any] | Any) -> list[str]:
    """Reasons a reader using `new` cannot read data written with `old`; empty when compatible."""
    problems: list[str] = []
    _check(old, new, "", _Names(), _Names(), None, None, problems, set())
    return problems


def _check(w: Any, r: Any, path: str, wn: _Names, rn: _Names, wns: str | None, rns: str | None,
           out: list[str], seen: set[tuple[int, int]]) -> None:
    w = wn.resolve(w, wns)
    r = rn.resolve(r, rns)
    if isinstance(w, dict) and isinstance(w.get("type"), (dict, list)):
        w = w["type"]
    if isinstance(r, dict) and isinstance(r.get("type"), (dict, list)):
        r = r["type"]
    wt, rt = _type_name(w), _type_name(r)
    where = path or "<root>"

    if wt == "union":
        for branch in w:  # every branch the writer may have used must be readable
            _check(branch, r, path, wn, rn, wns, rns, out, seen)
        return
    if rt == "union":
        if not any(_matches(w, b, wn, rn, wns, rns) for b in r):
            out.append(f"{where}: writer type {wt} matches no branch of the reader's union")
            return
        branch = next(b for b in r if _matches(w, b, wn, rn, wns, rns))
        _check(w, branch, path, wn, rn, wns, rns, out, seen)
        return
    if wt in _PROMOTIONS or rt in _PROMOTIONS:
        if rt not in _PROMOTIONS.get(wt, set()):
            out.append(f"{where}: writer type {wt} cannot be read as {rt}")
        return
    if wt != rt:
        out.append(f"{where}: writer type {wt} cannot be read as {rt}")
        return
    if wt == "array":
        _check(w["items"], r["items"], f"{path}[]", wn, rn, wns, rns, out, seen)
    elif wt == "map":
        _check(w["values"], r["values"], f"{path}{{}}", wn, rn, wns, rns, out, seen)
    elif wt == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            out.append(f"{where}: enum symbols {missing} removed and the reader enum has no default")
    elif wt == "fixed":
        if w.get("size") != r.get("size") or _short(w) != _short(r):
            out.append(f"{where}: fixed {_short(w)}({w.get('size')}) != {_short(r)}({r.get('size')})")
    elif wt in ("record", "error"):
        if _short(w) != _short(r):
            out.append(f"{where}: record {_short(w)} cannot be read as record {_short(r)}")
            return
        key = (id(w), id(r))
        if key in seen:  # recursive types: already being checked higher up
            return
        seen.add(key)
        w_ns, r_ns = w.get("namespace", wns), r.get("namespace", rns)
        w_fields = {f["name"]: f for f in w["fields"]}
        for rf in r["fields"]:
            names = [rf["name"], *rf.get("aliases", [])]
            wf = next((w_fields[n] for n in names if n in w_fields), None)
            sub = f"{path}.{rf['name']}" if path else rf["name"]
            if wf is None:
                if "default" not in rf:
                    out.append(f"{sub}: added without a default, so old events cannot fill it")
                continue
            _check(wf["type"], rf["type"], sub, wn, rn, w_ns, r_ns, out, seen)


def _matches(w: Any, r: Any, wn: _Names, rn: _Names, wns: str | None, rns: str | None) -> bool:
    """Whether a reader union branch is the one a writer type resolves to (same kind, or a promotion)."""
    w = wn.resolve(w, wns)
    r = rn.resolve(r, rns)
    wt, rt = _type_name(w), _type_name(r)
    if wt in _PROMOTIONS:
        return rt in _PROMOTIONS[wt]
    if wt != rt:
        return False
    if wt in ("record", "error", "enum", "fixed"):
        return _short(w) == _short(r)
    return True
