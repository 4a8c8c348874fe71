"""The invariants a chaos run must keep, as pure checks over what was read back from topics and tables.

Each check returns a `Verdict` whose detail names the first offenders, so a FAIL says what to look at.
Kept free of I/O so that each FAIL can be shown to fire on a constructed case (tests/unit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Coord = tuple[str, int, int]  # physical topic, partition, offset

#: Reason codes of records that did not decode (schemas/errors.py); only injected bytes may carry them.
DECODE_REASONS = frozenset({"undecodable", "malformed", "unknown_schema", "wrong_schema", "invalid_event"})


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Answer:
    """One record of the responses topic."""

    request_id: str
    status: str
    reason_code: str | None


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic: where its rejected record was, and why."""

    source: Coord
    reason_code: str
    request_id: str | None
    stage: str = ""


#: Stages that reject a request before its dedup claim (streams/pipeline.py: authentication, then
#: validation, then the claim): each copy of a resent request is rejected there with its own dead letter,
#: none is dropped as a duplicate (tests/integration/test_gateway_fused.py, "one letter per copy").
PRE_CLAIM_STAGES = frozenset({"authenticate", "validate"})


def _sample(items: Iterable[object], n: int = 3) -> str:
    shown = sorted(map(str, items))
    return ", ".join(shown[:n]) + (" …" if len(shown) > n else "")


def one_final_response(request_ids: set[str], answers: list[Answer]) -> Verdict:
    """Every request sent has exactly one final response: none missing, none answered twice."""
    counts = Counter(a.request_id for a in answers)
    missing = request_ids - counts.keys()
    twice = {rid for rid, n in counts.items() if n > 1}
    unknown = counts.keys() - request_ids
    problems = [f"{len(missing)} without a response ({_sample(missing)})" if missing else "",
                f"{len(twice)} answered more than once ({_sample(twice)})" if twice else "",
                f"{len(unknown)} answers to requests never sent ({_sample(unknown)})" if unknown else ""]
    problems = [p for p in problems if p]
    return Verdict("every request has exactly one final response", not problems,
                   "; ".join(problems) or f"{len(request_ids):,} requests, {len(answers):,} responses")


def bronze_exactly_once(in_topics: Mapping[str, set[tuple[int, int]]],
                        in_tables: Mapping[str, list[tuple[int, int]]]) -> Verdict:
    """Every decodable record of each landed topic is one row of its bronze table, by (partition, offset)."""
    problems, rows = [], 0
    for table, expected in sorted(in_topics.items()):
        landed = in_tables.get(table, [])
        rows += len(landed)
        counts = Counter(landed)
        missing = expected - counts.keys()
        twice = [c for c, n in counts.items() if n > 1]
        extra = counts.keys() - expected
        for what, found in (("missing", missing), ("duplicated", twice), ("not in the topic", extra)):
            if found:
                problems.append(f"{table}: {len(found)} {what} ({_sample(found)})")
    return Verdict("every event is in its bronze table exactly once", not problems,
                   "; ".join(problems) or f"{rows:,} rows in {len(in_topics)} tables match their topics")


def cost_totals_agree(offline: Mapping[str, tuple[int, int]], aggregates: Mapping[str, tuple[int, int]],
                      gold: Mapping[str, tuple[int, int]]) -> Verdict:
    """Per team (cost in nano-dollars, attempts): the aggregates and gold equal a recomputation from the
    telemetry topic, exactly."""
    problems = []
    for name, got in (("aggregates", aggregates), ("gold", gold)):
        wrong = {t for t in offline.keys() | got.keys() if offline.get(t, (0, 0)) != got.get(t, (0, 0))}
        for team in sorted(wrong)[:3]:
            want = offline.get(team, (0, 0))
            problems.append(f"{name} {team}: {got.get(team, (0, 0))} != telemetry {want}")
    total = sum(cost for cost, _ in offline.values())
    return Verdict("cost totals agree: aggregates = gold = telemetry (nano-dollars)", not problems,
                   "; ".join(problems) or f"{len(offline)} teams, {total:,} nano-USD, "
                   f"{sum(n for _, n in offline.values()):,} attempts")


def repeats(records: Iterable[tuple[Coord, str]]) -> dict[tuple[str, str], set[Coord]]:
    """(topic, request id) -> where its records are, for request ids found more than once in a topic (a
    client's retry, a redelivery, a re-enqueued gap): a stage must pass one of them and drop the others
    as duplicates."""
    found: dict[tuple[str, str], set[Coord]] = {}
    for coord, request_id in records:
        found.setdefault((coord[0], request_id), set()).add(coord)
    return {key: coords for key, coords in found.items() if len(coords) > 1}


def _rejected_per_copy(letters: list[Letter], repeated: Mapping[tuple[str, str], set[Coord]]
                       ) -> dict[tuple[str, str], set[Coord]]:
    """The repeated keys whose every copy was rejected before its dedup claim (each its own letter)."""
    early = {letter.source for letter in letters
             if letter.stage in PRE_CLAIM_STAGES and letter.reason_code != "duplicate"}
    return {key: coords for key, coords in repeated.items() if coords <= early}


def dead_letters_expected(letters: list[Letter], injected: set[Coord],
                          repeated: Mapping[tuple[str, str], set[Coord]],
                          rejected: Mapping[str, str]) -> Verdict:
    """The dead-letter topic holds exactly: each injected malformed record (with a decode reason), all
    but one record of each repeated request id (reason `duplicate`), and each rejected request (its
    response's reason code; once per copy when rejected before its dedup claim, PRE_CLAIM_STAGES);
    nothing else. A dead letter is identified by its source record; redelivered
    copies of one (the request path is at-least-once) are counted in the detail, not as extra ones."""
    by_source: dict[Coord, list[Letter]] = {}
    for letter in letters:
        by_source.setdefault(letter.source, []).append(letter)
    group_of = {coord: key for key, coords in repeated.items() for coord in coords}
    dropped: Counter[tuple[str, str]] = Counter()
    unexpected, redelivered = [], 0
    rejections: Counter[str] = Counter()
    for source, group in by_source.items():
        redelivered += len(group) - 1
        letter = group[0]
        if len({(g.reason_code, g.request_id) for g in group}) > 1:
            unexpected.append(f"{source} dead-lettered for different reasons")
        elif source in injected:
            if letter.reason_code not in DECODE_REASONS:
                unexpected.append(f"injected {source} dead-lettered as {letter.reason_code}")
        elif letter.reason_code == "duplicate" and source in group_of:
            dropped[group_of[source]] += 1
        elif letter.request_id is not None and rejected.get(letter.request_id) == letter.reason_code:
            rejections[letter.request_id] += 1
        else:
            unexpected.append(f"{source} {letter.reason_code} request {letter.request_id}")
    missing = [f"injected {c}" for c in injected - by_source.keys()]
    copies = _rejected_per_copy(letters, repeated)
    for key, coords in repeated.items():
        if key in copies:
            continue  # rejected before its claim: no copy is a duplicate, each has its rejection
        if dropped[key] < len(coords) - 1:
            missing.append(f"duplicate of {key[1]} in {key[0]}")
        elif dropped[key] == len(coords):
            unexpected.append(f"every record of {key[1]} in {key[0]} dropped as a duplicate")
    missing += [f"rejected request {rid}" for rid in rejected.keys() - rejections.keys()]
    allowed = {key[1]: len(coords) for key, coords in copies.items()}
    unexpected += [f"request {rid} rejected by {n} records" for rid, n in rejections.items()
                   if n > allowed.get(rid, 1)]
    problems = [f"{len(unexpected)} unexpected ({_sample(unexpected)})" if unexpected else "",
                f"{len(missing)} missing ({_sample(missing)})" if missing else ""]
    problems = [p for p in problems if p]
    kinds = (f"{len(injected)} malformed, {sum(dropped.values())} duplicates, {len(rejected)} rejected"
             f"{f'; {redelivered} redelivered copies' if redelivered else ''}")
    return Verdict("dead letters are exactly the expected ones", not problems,
                   "; ".join(problems) + f" ({kinds})" if problems else kinds)
