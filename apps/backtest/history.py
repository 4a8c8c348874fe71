"""The recorded traffic of a window, read from the bronze Delta tables with Arrow, one row per request.

Every request that got a final answer is in `responses`; what the request path let through is in
`requests` (after input guardrails: redacted text only) and `routed`; its attempts, tokens and cost are in
`telemetry`; what the PII scanner found is in `verdicts`. A request the live path rejected before its
guardrails passed was never stored (only its answer and a dead letter with a hash of its bytes): it is
counted, with its live reason, but cannot be replayed.

Tables are read column-projected and date-pruned; the `requests` table, the only wide one, is read in
record batches (see :mod:`apps.backtest.replay`), never whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake.exceptions import TableNotFoundError

from shared.tables.delta import open_table
from streamgate.config import Settings
from streamgate.storage import TablePath

DAY_MS = 86_400_000


class NoHistoryError(FileNotFoundError):
    """The lakehouse holds no recorded answers for the window."""


@dataclass(frozen=True)
class Window:
    since_ms: int
    until_ms: int
    team: str | None = None

    def dates(self) -> tuple[str, str]:
        def day(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")

        return day(self.since_ms), day(self.until_ms)


def parse_since(text: str, now_ms: int) -> int:
    """`7d`, `12h`, `30m` before now, or an ISO date/time (UTC when no zone is given)."""
    units = {"d": DAY_MS, "h": 3_600_000, "m": 60_000, "s": 1000}
    if text[-1:] in units and text[:-1].isdigit():
        return now_ms - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: give 7d, 12h, 30m or an ISO date/time") from exc
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def bronze(settings: Settings, name: str) -> TablePath:
    return settings.table_root() / "bronze" / name


def dataset(settings: Settings, name: str) -> ds.Dataset | None:
    try:
        return open_table(bronze(settings, name)).to_pyarrow_dataset()
    except TableNotFoundError:
        return None


def _window_filter(window: Window, time_column: str, team: bool = True) -> ds.Expression:
    first, last = window.dates()
    ts = (
        pa.scalar(window.since_ms, pa.timestamp("ms", tz="UTC")),
        pa.scalar(window.until_ms, pa.timestamp("ms", tz="UTC")),
    )
    expr = (ds.field("date") >= first) & (ds.field("date") <= last)
    expr &= (ds.field(time_column) >= ts[0]) & (ds.field(time_column) <= ts[1])
    if team and window.team is not None:
        expr &= ds.field("team") == window.team
    return expr


def _dates_filter(window: Window) -> ds.Expression:
    """Rows of related tables: by date only (their own timestamps may fall just outside the window);
    one day of slack each side covers a request answered after midnight."""
    first, last = window.dates()
    lo = datetime.fromisoformat(first).timestamp() * 1000 - DAY_MS
    hi = datetime.fromisoformat(last).timestamp() * 1000 + DAY_MS
    fmt = "%Y-%m-%d"
    return (ds.field("date") >= datetime.fromtimestamp(lo / 1000, UTC).strftime(fmt)) & (
        ds.field("date") <= datetime.fromtimestamp(hi / 1000, UTC).strftime(fmt)
    )


def first_per_id(table: pa.Table, column: str = "request_id") -> pa.Table:
    """One row per id (bronze may hold a record twice where a stage delivered it twice)."""
    if table.num_rows == 0 or pc.count_distinct(table[column]).as_py() == table.num_rows:
        return table
    _, first = np.unique(table[column].to_numpy(zero_copy_only=False), return_index=True)
    return table.take(pa.array(np.sort(first)))


def answers(settings: Settings, window: Window) -> pa.Table:
    """Every request answered in the window: who, its live outcome and the target that served it."""
    found = dataset(settings, "responses")
    if found is None:
        raise NoHistoryError(f"no responses table under {bronze(settings, 'responses').parent}")
    cols = [
        "request_id",
        "team",
        "project",
        "api_key_id",
        "status",
        "reason_code",
        "provider",
        "model",
        "created_at",
    ]
    table = first_per_id(found.to_table(columns=cols, filter=_window_filter(window, "created_at")))
    if table.num_rows == 0:
        raise NoHistoryError("no recorded requests in the window")
    return table


def _related(window: Window, ids: pa.Array | None) -> ds.Expression:
    """Rows of a related table for the window's requests: the dates around it, and only `ids` when
    given (those dates hold every request of their days: the 1M-request demo's backtest of its own
    window read 5.2 million of the day's routes and attempts, 2.5 GB)."""
    expr = _dates_filter(window)
    return expr if ids is None else expr & ds.field("request_id").isin(ids)


def routed(settings: Settings, window: Window, ids: pa.Array | None = None) -> pa.Table:
    """The live first target (the pick, before fallbacks) and the policy version of each routed request."""
    found = dataset(settings, "routed")
    schema = pa.schema(
        [
            ("request_id", pa.string()),
            ("live_target", pa.string()),
            ("strategy", pa.string()),
            ("policy_version", pa.string()),
        ]
    )
    if found is None:
        return schema.empty_table()
    table = first_per_id(
        found.to_table(
            columns=["request_id", "targets", "strategy", "policy_version"], filter=_related(window, ids)
        )
    )
    first = pc.list_element(table["targets"], 0)
    target = pc.binary_join_element_wise(
        pc.struct_field(first, "provider"), pc.struct_field(first, "model"), "/"
    )
    return pa.table([table["request_id"], target, table["strategy"], table["policy_version"]], schema=schema)


def attempts(settings: Settings, window: Window, ids: pa.Array | None = None) -> pa.Table:
    """Per request: the cost of every attempt, and the tokens of the attempts that answered."""
    found = dataset(settings, "telemetry")
    schema = pa.schema(
        [
            ("request_id", pa.string()),
            ("cost_nanousd", pa.int64()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("cached_tokens", pa.int64()),
        ]
    )
    if found is None:
        return schema.empty_table()
    cols = ["request_id", "status", "cost_nanousd", "prompt_tokens", "completion_tokens", "cached_tokens"]
    table = found.to_table(columns=cols, filter=_related(window, ids))
    ok = pc.equal(table["status"], "ok")
    zero = pa.scalar(0, pa.int64())
    table = pa.table(
        {
            "request_id": table["request_id"],
            "cost_nanousd": pc.cast(table["cost_nanousd"], pa.int64()),
            **{
                c: pc.if_else(ok, pc.cast(table[c], pa.int64()), zero)
                for c in ("prompt_tokens", "completion_tokens", "cached_tokens")
            },
        }
    )
    summed = table.group_by("request_id").aggregate([(c, "sum") for c in schema.names[1:]])
    return (
        summed.rename_columns([n.removesuffix("_sum") for n in summed.column_names])
        .select(schema.names)
        .cast(schema)
    )


def findings(settings: Settings, window: Window, ids: pa.Array | None = None) -> pa.Table:
    """Per request: the entity types the live input PII scan found, sorted and `|`-joined."""
    found = dataset(settings, "verdicts")
    schema = pa.schema([("request_id", pa.string()), ("entities", pa.string())])
    if found is None:
        return schema.empty_table()
    expr = _related(window, ids) & (ds.field("stage") == "input") & (ds.field("guardrail") == "pii")
    table = found.to_table(columns=["request_id", "entities"], filter=expr)
    if table.num_rows == 0:
        return schema.empty_table()
    entities = table["entities"].combine_chunks()
    kinds = pc.struct_field(pc.list_flatten(entities), "type")
    owners = pc.take(table["request_id"], pc.list_parent_indices(entities))
    pairs = pa.table({"request_id": owners, "type": kinds}).group_by(["request_id", "type"]).aggregate([])
    pairs = pairs.sort_by([("request_id", "ascending"), ("type", "ascending")])
    listed = pairs.group_by("request_id", use_threads=False).aggregate([("type", "list")])
    return pa.table([listed["request_id"], pc.binary_join(listed["type_list"], "|")], schema=schema)


def request_batches(
    settings: Settings,
    window: Window,
    columns: list[str],
    ids: pa.Array | None = None,
    batch_rows: int = 65_536,
) -> Iterator[pa.RecordBatch]:
    """The stored (guarded, redacted) requests of the window, in record batches."""
    found = dataset(settings, "requests")
    if found is None:
        return
    # a request's answer carries the request's own created_at: the same window selects both
    expr = _window_filter(window, "created_at") if ids is None else _dates_filter(window)
    if ids is not None:
        expr &= ds.field("request_id").isin(ids)
    present = set(found.schema.names)  # a column a later schema version added may not be stored yet
    yield from found.to_batches(columns=[c for c in columns if c in present], filter=expr,
                                batch_size=batch_rows)


def join(left: pa.Array | pa.ChunkedArray, right: pa.Table, column: str = "request_id") -> pa.Table:
    """`right`'s rows aligned to the ids in `left` (nulls where it has none): a columnar lookup."""
    index = pc.index_in(left, value_set=right[column])
    return right.drop_columns([column]).take(index)


def live_versions(rows: pa.Table) -> dict[str, int]:
    """How many requests were decided under each recorded policy version."""
    if "policy_version" not in rows.column_names:
        return {}
    counts = pc.value_counts(rows["policy_version"].drop_null())
    return {str(c["values"]): int(c["counts"]) for c in counts.to_pylist()}


def to_ms(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Epoch milliseconds of a timestamp column (Delta stores microseconds whatever the event said)."""
    as_ms = pc.cast(column, pa.timestamp("ms", tz="UTC"))
    values: np.ndarray = pc.fill_null(pc.cast(as_ms, pa.int64()), 0).to_numpy().astype(np.int64)
    return values


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
