"""Read back what a run left behind — every topic (read_committed), the bronze and gold Delta tables and
the usage aggregates — into the plain values the invariants check."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from deltalake.exceptions import TableNotFoundError

from aggregation.restore import read_committed_rows
from apps.chaos.invariants import Answer, Coord, Letter, repeats
from lakehouse.gold import rebuild_daily_cost
from lakehouse.sink import bronze_root
from lakehouse.tables import BRONZE
from schemas import make_codec
from schemas.errors import EventDecodeError
from schemas.topics import Topic, physical_name
from shared.tables.delta import open_table
from shared.tables.query import run_query
from shared.usage.live import totals
from streamgate.config import Settings
from streamgate.kafka.replay import read_to_end

EVENT_TYPES = {Topic.REQUESTS: "Request", Topic.GUARDED: "Request", Topic.ROUTED: "RoutedRequest",
               Topic.REJECTED: "Response", Topic.RESPONSES: "Response", Topic.TELEMETRY: "Telemetry",
               Topic.VERDICTS: "GuardrailVerdict", Topic.AUDIT: "AuditEvent", Topic.DEADLETTER: "DeadLetter"}
#: The request-path stages pass one record per request id read from these topics, and drop the others.
DEDUPED = (Topic.REQUESTS,)

Totals = dict[str, tuple[int, int]]  # team -> (cost in nano-dollars, attempts)


@dataclass
class Evidence:
    request_ids: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    repeated: dict[tuple[str, str], set[Coord]] = field(default_factory=dict)
    in_topics: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    in_tables: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    offline: Totals = field(default_factory=dict)
    aggregates: Totals = field(default_factory=dict)
    gold: Totals = field(default_factory=dict)

    def rejected(self) -> dict[str, str]:
        """Request id -> reason code of its (first) rejected response."""
        out: dict[str, str] = {}
        for a in self.answers:
            if a.status == "rejected":
                out.setdefault(a.request_id, a.reason_code or "")
        return out


def read_topic(settings: Settings, topic: Topic, timeout_s: float = 120) -> list[tuple[int, int, Any]]:
    """(partition, offset, event or None when it does not decode) for every committed record."""
    name = physical_name(topic, settings.kafka.topic_prefix)
    codec = make_codec(name, EVENT_TYPES[topic], settings.schema_registry.url)
    out: list[tuple[int, int, Any]] = []
    for msg in read_to_end(settings, name, role="admin", timeout_s=timeout_s):
        p, o = msg.partition() or 0, msg.offset() or 0
        try:
            out.append((p, o, codec.decode(msg.value() or b"", partition=p, offset=o)))
        except EventDecodeError:
            out.append((p, o, None))
    return out


def answer_times(settings: Settings) -> list[float]:
    """When each committed final answer was produced (its record's timestamp, in seconds), sorted: the
    dispatcher's clock, not the reader's, so a slow reader does not show up as a stall."""
    name = physical_name(Topic.RESPONSES, settings.kafka.topic_prefix)
    return sorted(msg.timestamp()[1] / 1000 for msg in read_to_end(settings, name, role="admin"))


def longest_stall(times: list[float], since: float) -> tuple[float, float]:
    """(seconds, start) of the longest interval in which requests waited and no answer was produced:
    between the first request sent (`since`) and the first answer, or between consecutive answers."""
    points = [since, *(t for t in times if t >= since)]
    return max(((b - a, a) for a, b in itertools.pairwise(points)), default=(0.0, since))


def bronze_coordinates(settings: Settings, table: str) -> list[tuple[int, int]]:
    try:
        data = open_table(bronze_root(settings) / table).to_pyarrow_table(columns=["_partition", "_offset"])
    except TableNotFoundError:
        return []
    return list(zip(data["_partition"].to_pylist(), data["_offset"].to_pylist(), strict=True))


def aggregate_totals(settings: Settings) -> Totals:
    """Per team, summed over the 1-day windows of the compacted aggregates topic."""
    name = physical_name(Topic.AGGREGATES, settings.kafka.topic_prefix)
    codec = make_codec(name, "UsageAggregate", settings.schema_registry.url)
    rows = read_committed_rows(settings, name, codec, role="admin")
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (window, _, dimension, value), total in totals(rows).items():
        if window == "1d" and dimension == "team":
            out[value][0] += total.counts["cost_nanousd"]
            out[value][1] += total.counts["attempts"]
    return {team: (cost, n) for team, (cost, n) in out.items()}


def gold_totals(settings: Settings) -> Totals:
    """Per team from `gold_daily_cost`, rebuilt from the bronze telemetry table first."""
    if not bronze_coordinates(settings, "telemetry"):
        return {}
    rebuild_daily_cost(settings)
    rows = run_query(settings, "select team, cast(sum(cost_nanousd) as bigint) as cost, "
                               "cast(sum(attempts) as bigint) as n from gold_daily_cost group by team")
    return {r["team"]: (int(r["cost"]), int(r["n"])) for r in rows.to_pylist()}


def collect(settings: Settings) -> Evidence:
    prefix = settings.kafka.topic_prefix
    ev = Evidence()
    records = {t: read_topic(settings, t) for t in EVENT_TYPES}
    ev.request_ids = {e["request_id"] for _, _, e in records[Topic.REQUESTS] if e is not None}
    ev.answers = [Answer(e["request_id"], e["status"], e["reason_code"])
                  for _, _, e in records[Topic.RESPONSES] if e is not None]
    ev.letters = [Letter((e["source_topic"], e["partition"], e["offset"]), e["reason_code"], e["request_id"],
                         e["stage"]) for _, _, e in records[Topic.DEADLETTER] if e is not None]
    ev.repeated = repeats(((physical_name(t, prefix), p, o), e["request_id"])
                             for t in DEDUPED for p, o, e in records[t] if e is not None)
    for table in BRONZE:
        ev.in_topics[table.name] = {(p, o) for p, o, e in records[table.topic] if e is not None}
        ev.in_tables[table.name] = bronze_coordinates(settings, table.name)
    offline: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, _, e in records[Topic.TELEMETRY]:
        if e is not None:
            offline[e["team"]][0] += e["cost_nanousd"]
            offline[e["team"]][1] += 1
    ev.offline = {team: (cost, n) for team, (cost, n) in offline.items()}
    ev.aggregates = aggregate_totals(settings)
    ev.gold = gold_totals(settings)
    return ev
