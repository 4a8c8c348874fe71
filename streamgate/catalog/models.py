"""The model catalog: every model streamgate can route to, with context window, prices and regions.

Prices are kept as exact decimals in USD per million tokens (the unit price lists use), and converted to
integer nano-dollars per request only when a cost is computed, so no float ever touches money.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path

from streamgate.config import REPO_ROOT

CATALOG_FILE = REPO_ROOT / "config" / "catalog" / "models.csv"
#: Dated price changes on top of the catalog: a change applies to calls that start at or after
#: `effective_from`, so a new price never reprices history (costs are computed once, at the call).
PRICE_CHANGES_FILE = CATALOG_FILE.with_name("price_changes.csv")
FIELDS = ("provider", "model", "mode", "context_window", "max_output_tokens", "input_usd_per_mtok",
          "output_usd_per_mtok", "cached_input_usd_per_mtok", "regions", "source")
_NANOS_PER_USD_PER_MTOK = Decimal(1000)  # 1 USD per 1M tokens = 1,000 nano-USD per token


#: For a bare model id listed by several providers, the first-party provider wins.
_PREFERRED = {p: i for i, p in enumerate(("openai", "anthropic", "gemini", "mistral", "deepseek", "xai",
                                          "simulator", "together_ai", "groq"))}


class UnknownModelError(KeyError):
    """A model id the catalog does not list."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    model: str
    mode: str
    context_window: int
    max_output_tokens: int
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    cached_input_usd_per_mtok: Decimal
    regions: tuple[str, ...]
    #: Where the prices came from (e.g. pypi:litellm==1.109.1): the price version in telemetry.
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    def cost_nanousd(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> int:
        """Exact cost of one call in integer nano-dollars (cached input tokens at the cached price)."""
        fresh = max(prompt_tokens - cached_tokens, 0)
        total = (fresh * self.input_usd_per_mtok + cached_tokens * self.cached_input_usd_per_mtok
                 + completion_tokens * self.output_usd_per_mtok) * _NANOS_PER_USD_PER_MTOK
        return int(total.to_integral_value(ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class PriceChange:
    effective_from_ms: int
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    cached_input_usd_per_mtok: Decimal
    source: str


class ModelCatalog:
    """Lookup by `provider/model` or by bare model id (the first provider listing it wins)."""

    def __init__(self, models: list[ModelInfo], changes: dict[str, list[PriceChange]] | None = None) -> None:
        self._changes = {k: sorted(v, key=lambda c: c.effective_from_ms) for k, v in (changes or {}).items()}
        self._by_key = {m.key: m for m in models}
        self._by_model: dict[str, ModelInfo] = {}
        for m in sorted(models, key=lambda m: _PREFERRED.get(m.provider, len(_PREFERRED))):
            self._by_model.setdefault(m.model, m)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._by_key or name in self._by_model)

    def get(self, name: str) -> ModelInfo:
        found = self._by_key.get(name) or self._by_model.get(name)
        if found is None:
            raise UnknownModelError(f"model {name!r} is not in the catalog")
        return found

    def priced_at(self, info: ModelInfo, at_ms: int) -> ModelInfo:
        """`info` with the prices in effect at `at_ms`; its `source` names that price version."""
        current = None
        for change in self._changes.get(info.key, ()):
            if change.effective_from_ms > at_ms:
                break
            current = change
        if current is None:
            return info
        return replace(info, input_usd_per_mtok=current.input_usd_per_mtok,
                       output_usd_per_mtok=current.output_usd_per_mtok,
                       cached_input_usd_per_mtok=current.cached_input_usd_per_mtok, source=current.source)

    def price_change_times(self, info: ModelInfo) -> list[int]:
        """When `info`'s price changed (ms, ascending): between two of these its price is constant."""
        return [c.effective_from_ms for c in self._changes.get(info.key, ())]

    def providers(self) -> set[str]:
        return {m.provider for m in self._by_key.values()}


def _row_to_model(row: dict[str, str]) -> ModelInfo:
    cached = row["cached_input_usd_per_mtok"] or row["input_usd_per_mtok"] or "0"
    return ModelInfo(
        provider=row["provider"], model=row["model"], mode=row["mode"],
        context_window=int(row["context_window"] or 0), max_output_tokens=int(row["max_output_tokens"] or 0),
        input_usd_per_mtok=Decimal(row["input_usd_per_mtok"] or "0"),
        output_usd_per_mtok=Decimal(row["output_usd_per_mtok"] or "0"),
        cached_input_usd_per_mtok=Decimal(cached),
        regions=tuple(r for r in row["regions"].split("|") if r),
        source=row.get("source") or "",
    )


def load_catalog(path: Path = CATALOG_FILE, changes: Path | None = None) -> ModelCatalog:
    with path.open(newline="") as fh:
        models = [_row_to_model(row) for row in csv.DictReader(fh)]
    changes = changes or path.with_name(PRICE_CHANGES_FILE.name)
    return ModelCatalog(models, load_price_changes(changes) if changes.exists() else {})


def load_price_changes(path: Path) -> dict[str, list[PriceChange]]:
    """`provider,model,effective_from,input/output/cached_input_usd_per_mtok,source` rows by key."""
    found: dict[str, list[PriceChange]] = {}
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                when = datetime.fromisoformat(row["effective_from"])
                change = PriceChange(
                    int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000),
                    Decimal(row["input_usd_per_mtok"]), Decimal(row["output_usd_per_mtok"]),
                    Decimal(row["cached_input_usd_per_mtok"] or row["input_usd_per_mtok"]),
                    row.get("source") or f"change:{row['effective_from']}")
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise ValueError(f"{path}:{n}: bad price change row ({exc}): {row}") from exc
            found.setdefault(f"{row['provider']}/{row['model']}", []).append(change)
    return found


@cache
def default_catalog() -> ModelCatalog:
    return load_catalog()
