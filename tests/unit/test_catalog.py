"""The model catalog: size, lookups, and exact integer costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from streamgate.catalog import UnknownModelError, default_catalog
from streamgate.catalog.models import ModelInfo, load_catalog
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


def test_a_price_change_applies_from_its_date_and_never_reprices_history(tmp_path: Path) -> None:
    changes = tmp_path / "price_changes.csv"
    changes.write_text("provider,model,effective_from,input_usd_per_mtok,output_usd_per_mtok,"
                       "cached_input_usd_per_mtok,source\n"
                       "simulator,sim-small,2026-12-01,0.08,0.32,,local:2026-12-01\n")
    catalog = load_catalog(changes=changes)
    info = catalog.get("simulator/sim-small")
    before = catalog.priced_at(info, 1_795_000_000_000)  # 2026-11-19
    after = catalog.priced_at(info, 1_796_000_000_000)  # 2026-11-30: still the old price
    later = catalog.priced_at(info, 1_796_200_000_000)  # 2026-12-02
    assert before == after == info
    assert later.source == "local:2026-12-01" and later.cached_input_usd_per_mtok == Decimal("0.08")
    assert info.cost_nanousd(1_000_000, 1_000_000) == 500_000_000
    assert later.cost_nanousd(1_000_000, 1_000_000) == 400_000_000


def test_a_bad_price_change_row_names_its_line(tmp_path: Path) -> None:
    changes = tmp_path / "price_changes.csv"
    changes.write_text("provider,model,effective_from,input_usd_per_mtok,output_usd_per_mtok,"
                       "cached_input_usd_per_mtok,source\nsimulator,sim-small,someday,1,2,,x\n")
    with pytest.raises(ValueError, match=r"price_changes\.csv:2"):
        load_catalog(changes=changes)
