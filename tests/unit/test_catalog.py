"""The model catalog: size, lookups, and exact integer costs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streamgate.catalog import UnknownModelError, default_catalog
from streamgate.catalog.models import ModelInfo
from streamgate.catalog.refresh import convert


def test_catalog_is_large_and_first_party_wins() -> None:
    catalog = default_catalog()
    assert len(catalog) >= 1600
    assert catalog.get("gpt-4o-mini").provider == "openai"
    assert catalog.get("azure/gpt-4o-mini").provider == "azure"
    assert "simulator/sim-small" in catalog
    with pytest.raises(UnknownModelError, match="not in the catalog"):
        catalog.get("gpt-17-ultra")


def test_costs_are_exact_integer_nanodollars() -> None:
    m = ModelInfo("p", "m", "chat", 1000, 100, Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), ("us",))
    assert m.cost_nanousd(1, 0) == 150  # 0.15 USD per 1M tokens = 150 nano-USD per token
    assert m.cost_nanousd(1000, 500, cached_tokens=400) == 600 * 150 + 400 * 75 + 500 * 600
    cheap = ModelInfo("p", "m", "chat", 1, 1, Decimal("0.0001"), Decimal("0"), Decimal("0"), ("us",))
    assert cheap.cost_nanousd(10, 0) == 1  # 0.1 nano-USD per token: ten tokens make one nano-dollar
    assert sum(cheap.cost_nanousd(1, 0) for _ in range(10)) == 0  # rounding per call is explicit


def test_convert_keeps_facts_only() -> None:
    rows = convert({"openai/x": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 10,
                                 "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07},
                    "img": {"litellm_provider": "openai", "mode": "image_generation"},
                    "sample_spec": "not a model"}, "test")
    assert rows == [{"provider": "openai", "model": "x", "mode": "chat", "context_window": "10",
                     "max_output_tokens": "0", "input_usd_per_mtok": "0.15", "output_usd_per_mtok": "0.6",
                     "cached_input_usd_per_mtok": "", "regions": "us|eu", "source": "test"}]
