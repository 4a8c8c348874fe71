"""Gold rebuilds and analyst queries at scale: 10 million bronze telemetry rows.

The bronze `telemetry` table (the sink's schema, 30 date partitions, files of ~250,000 rows as a
compacted table holds them) is generated column by column with numpy: per-row Python dicts would take
longer than everything measured. Timed, median of 3 runs each:
- the gold rebuilds `streamgate lakehouse gold` runs: all 30 days, and one day (what the scheduled
  refine does after a day's new rows);
- analyst queries on gold (a month's cost by team, p95 latency by provider) and the same questions
  asked of bronze directly, which is what the gold tables save.
Baseline in the same run: a full scan of the bronze table (`count(*)` plus `sum(cost_nanousd)`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.progress import Progress

from bench.harness import median_ms, write_result
from lakehouse.gold import rebuild
from lakehouse.tables import BRONZE
from shared.tables.delta import write_table
from shared.tables.query import run_query
from streamgate.config import Settings, load_settings
from streamgate.storage import TablePath

N = 10_000_000
FILE_ROWS = 250_000
DAYS = 30
_DAY_MS = 86_400_000
_START_MS = 1_792_800_000_000  # 2026-10-24T00:00:00Z
_TEAMS = np.array(["search", "support", "research", "marketing", "platform", "finance", "legal", "ops"])
_PROVIDERS = np.array(["openai", "openai", "azure", "anthropic", "together_ai", "bedrock"])
_MODELS = np.array(["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest",
                    "meta-llama/Llama-3-70b-chat-hf", "amazon.nova-lite-v1:0"])
GOLD_QUERIES = {
    "month's cost by team (gold)": "select team, sum(cost_nanousd) as cost from gold_daily_cost "
                                   "group by team",
    "month's cost by team (bronze)": "select team, sum(cost_nanousd) as cost from telemetry group by team",
    "p95 latency by provider (gold)": "select provider, model, max(latency_p95_ms) as p95 "
                                      "from gold_provider_daily group by provider, model",
    "p95 latency by provider (bronze)": "select provider, model, approx_percentile_cont(latency_ms, 0.95) "
                                        "as p95 from telemetry group by provider, model",
}


def _chunk(rng: np.random.Generator, start: int, n: int, schema: pa.Schema) -> pa.Table:
    """`n` telemetry rows (offsets from `start`) spread evenly over DAYS days."""
    at = _START_MS + (np.arange(start, start + n, dtype=np.int64) * (DAYS * _DAY_MS // N))
    pick = rng.integers(0, len(_PROVIDERS), n)
    team = _TEAMS[rng.integers(0, len(_TEAMS), n)]
    ok = rng.random(n) > 0.05
    cached = rng.random(n) < 0.1
    prompt = rng.integers(5, 4000, n)
    completion = np.where(ok, rng.integers(0, 800, n), 0)
    ids = np.char.add("r", np.arange(start, start + n).astype(str))
    ts = pa.array(at, pa.timestamp("ms", tz="UTC"))
    columns: dict[str, Any] = {
        "event_id": ids, "request_id": ids, "trace_id": ids, "attempt": rng.choice([1, 1, 1, 2], n),
        "fallback_index": (rng.random(n) < 0.03).astype(np.int32), "team": team,
        "project": np.char.add(team, "-app"),
        "api_key_id": np.char.add("sha256:key-", rng.integers(0, 40, n).astype(str)),
        "user_id": None, "provider": _PROVIDERS[pick], "model": _MODELS[pick], "region": "us",
        "status": np.where(ok, "ok", "error"), "error_class": None, "http_status": np.where(ok, 200, 500),
        "stream": False, "prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": 0,
        "reasoning_tokens": 0, "usage_source": "provider", "latency_ms": rng.lognormal(6, 0.6, n),
        "ttft_ms": None, "cache_hit": cached, "cache_kind": None,
        "cost_nanousd": np.where(cached, 0, prompt * 150 + completion * 600), "price_version": "bench",
        "routing_config_version": "v1", "tags": None, "started_at": ts, "ended_at": ts,
        "_partition": (np.arange(n) % 6).astype(np.int32), "_offset": np.arange(start, start + n),
        "_kafka_ts": ts, "date": ts.cast(pa.date32()).cast(pa.string()),
    }
    arrays = []
    for field in schema:
        value = columns[field.name]
        if value is None:
            arrays.append(pa.nulls(n, field.type) if field.name != "tags" else
                          pa.array([[]] * n, field.type))
        elif isinstance(value, (str, bool, int)):
            arrays.append(pa.array(np.full(n, value)).cast(field.type))
        else:
            arrays.append(pa.array(value).cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _build(settings: Settings) -> TablePath:
    schema = next(t for t in BRONZE if t.name == "telemetry").schema()
    path = settings.table_root() / "bronze" / "telemetry"
    rng = np.random.default_rng(7)
    with Progress() as progress:
        task = progress.add_task("bronze telemetry rows", total=N)
        for start in range(0, N, FILE_ROWS * 4):
            chunk = _chunk(rng, start, min(FILE_ROWS * 4, N - start), schema)
            write_table(path, chunk, mode="append", partition_by=["date"])
            progress.update(task, completed=start + chunk.num_rows)
    return path


def timed(fn: Callable[[], Any]) -> float:
    return median_ms(fn, repeats=3)  # each gold rebuild over 10M rows takes seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = load_settings()
        settings = base.model_copy(update={"lakehouse": base.lakehouse.model_copy(
            update={"root": str(Path(tmp) / "lakehouse")})})
        _build(settings)
        one_day = time.strftime("%Y-%m-%d", time.gmtime((_START_MS + 15 * _DAY_MS) / 1000))
        ms = {
            "full scan of bronze (baseline)": timed(
                lambda: run_query(settings, "select count(*), sum(cost_nanousd) from telemetry")),
            "gold daily_cost, all 30 days": timed(lambda: rebuild(settings, "daily_cost")),
            "gold provider_daily, all 30 days": timed(lambda: rebuild(settings, "provider_daily")),
            "gold daily_cost, one day": timed(lambda: rebuild(settings, "daily_cost", [one_day])),
            "gold provider_daily, one day": timed(
                lambda: rebuild(settings, "provider_daily", [one_day])),
        }
        for name, sql in GOLD_QUERIES.items():
            ms[name] = timed(partial(run_query, settings, sql))
    scan = ms["full scan of bronze (baseline)"]
    result = {"rows": N, "days": DAYS, "ms": ms, "ratio_to_full_scan": {k: v / scan for k, v in ms.items()}}
    rows = [("bronze telemetry rows / days", f"{N:,} / {DAYS}"),
            *[(k, f"{v:,.0f} ms ({v / scan:.1f}x a full scan)") for k, v in ms.items()]]
    write_result("gold", result, rows)
    for k, v in rows:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
