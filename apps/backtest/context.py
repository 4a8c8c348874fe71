"""What a replayed decision reads besides the request: provider health at its time, and prices.

Health: latency-aware routing read Feast's `provider_health` view online (when `features.health_source`
is `feast`); the push worker appended every row it pushed to the `provider_health` feature table, so the
offline table holds what routing could read, and the value at time t is the latest row at or before t
that is not older than the view's TTL. Where the live path read a static table, so does the backtest.

Prices: the catalog's price at each request's time (dated price changes), computed once per target and
price period and applied to token columns with numpy.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from apps.backtest.history import to_ms
from features.tables import table_path
from schemas.snapshots import HealthStats
from shared.tables.delta import open_table
from streamgate.catalog import ModelCatalog, ModelInfo, UnknownModelError
from streamgate.config import Settings
from streams.route.health import ProviderHealth, StaticHealth


class PointInTimeHealth:
    """`ProviderHealth` as it read at `at_ms` (set it before each decision)."""

    def __init__(self, rows: pa.Table, ttl_ms: int) -> None:
        self.ttl_ms, self.at_ms = ttl_ms, 0
        self._series: dict[str, tuple[list[int], list[HealthStats]]] = {}
        ordered = rows.sort_by([("target", "ascending"), ("event_timestamp", "ascending")])
        times = to_ms(ordered["event_timestamp"])
        for i, (target, p95, err, n) in enumerate(
            zip(
                ordered["target"].to_pylist(),
                ordered["latency_p95_ms"].to_pylist(),
                ordered["error_rate"].to_pylist(),
                ordered["attempts_5m"].to_pylist(),
                strict=True,
            )
        ):
            stamps, stats = self._series.setdefault(str(target), ([], []))
            stamps.append(int(times[i]))
            stats.append(
                HealthStats(p95_ms=float(p95 or 0.0), error_rate=float(err or 0.0), samples=int(n or 0))
            )

    def get(self, provider: str, model: str) -> HealthStats | None:
        series = self._series.get(f"{provider}/{model}")
        if series is None:
            return None
        at = bisect_right(series[0], self.at_ms) - 1
        if at < 0 or self.at_ms - series[0][at] > self.ttl_ms:
            return None
        return series[1][at]

    def boundaries(self) -> np.ndarray:
        """Times at which any target's health as read may change (a row arrives, or one expires)."""
        stamps = [t for times, _ in self._series.values() for t in times]
        return np.unique(np.array(stamps + [t + self.ttl_ms + 1 for t in stamps], dtype=np.int64))


def recorded_health(settings: Settings) -> tuple[ProviderHealth, np.ndarray | None]:
    """(the health routing read, the times it can change) — None: it never changes (a static table)."""
    if settings.features.health_source != "feast":
        return StaticHealth(), None
    try:
        table = open_table(table_path(settings, "provider_health")).to_pyarrow_table(
            columns=["target", "event_timestamp", "latency_p95_ms", "error_rate", "attempts_5m"]
        )
    except TableNotFoundError:
        return StaticHealth(), None
    from features.definitions import STREAM_TTL  # feast: imported only where the live path read it

    health = PointInTimeHealth(table, int(STREAM_TTL.total_seconds() * 1000))
    return health, health.boundaries()


def lookup(catalog: ModelCatalog, target: str) -> ModelInfo | None:
    """The catalog entry a dispatcher prices `provider/model` with (the bare model id as fallback)."""
    try:
        return catalog.get(target)
    except UnknownModelError:
        try:
            return catalog.get(target.split("/", 1)[-1])
        except UnknownModelError:
            return None


#: Rough characters per token of each tokenizer family (English prose). No tokenizer is run here: a
#: request's recorded tokens are scaled by the ratio when a re-route changes the family.
CHARS_PER_TOKEN = {"openai": 4.0, "anthropic": 3.5, "llama": 3.8}


def tokenizer_family(target: str) -> str:
    provider, _, model = target.partition("/")
    if provider == "anthropic" or "claude" in model:
        return "anthropic"
    if "llama" in model.lower():
        return "llama"
    return "openai"  # openai, azure and the simulator's models count tokens like OpenAI's


@dataclass(frozen=True)
class Priced:
    cost_nanousd: np.ndarray
    estimated: np.ndarray  # bool: tokens re-estimated for another tokenizer
    unpriced: np.ndarray  # bool: the target is not in the catalog (cost 0, said in the report)


def price(
    catalog: ModelCatalog,
    targets: np.ndarray,
    served: np.ndarray,
    at_ms: np.ndarray,
    prompt: np.ndarray,
    completion: np.ndarray,
    cached: np.ndarray,
) -> Priced:
    """Cost in nano-USD of each request's tokens at `targets` (object array of provider/model) at the
    prices in effect at `at_ms`; tokens counted by `served`'s tokenizer are rescaled to the target's."""
    n = len(targets)
    cost, estimated, unpriced = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
    for target in np.unique(targets):
        rows = np.flatnonzero(targets == target)
        info = lookup(catalog, str(target))
        if info is None:
            unpriced[rows] = True
            continue
        family = tokenizer_family(str(target))
        sources, which = np.unique(served[rows].astype(str), return_inverse=True)
        scale = np.array(
            [CHARS_PER_TOKEN[tokenizer_family(s)] / CHARS_PER_TOKEN[family] if s else 1.0 for s in sources]
        )[which]
        estimated[rows] = scale != 1.0
        p, c, k = (np.rint(x[rows] * scale) for x in (prompt, completion, cached))
        changes = np.array(catalog.price_change_times(info), dtype=np.int64)
        period = np.searchsorted(changes, at_ms[rows], side="right")
        for which in np.unique(period):
            sel = period == which
            at = int(changes[which - 1]) if which else int(at_ms[rows][sel].min())
            unit = catalog.priced_at(info, at)
            per_token = [
                float(v * Decimal(1000))
                for v in (unit.input_usd_per_mtok, unit.cached_input_usd_per_mtok, unit.output_usd_per_mtok)
            ]
            fresh = np.maximum(p[sel] - k[sel], 0)
            cost[rows[sel]] = np.rint(fresh * per_token[0] + k[sel] * per_token[1] + c[sel] * per_token[2])
    return Priced(cost, estimated, unpriced)
