"""Rebuild config/catalog/models.csv from a public price list.

Source: the model price and context-window table that LiteLLM publishes inside its PyPI package
(`litellm/model_prices_and_context_window_backup.json`, MIT licensed), fetched with pip so it works
wherever PyPI is reachable. Only facts are kept (provider, model id, window, per-token prices), converted
to exact USD-per-million-token decimals. Local additions (the provider simulator) live in
`config/catalog/local_models.csv` and are merged in.
"""

from __future__ import annotations

import csv
import json
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from streamgate.catalog.models import CATALOG_FILE, FIELDS

LOCAL_FILE = CATALOG_FILE.parent / "local_models.csv"
PRICE_MEMBER = "litellm/model_prices_and_context_window_backup.json"
KEPT_MODES = {"chat", "completion", "responses", "embedding"}


def _per_mtok(value: Any) -> str:
    if value in (None, ""):
        return ""
    return format((Decimal(str(value)) * 1_000_000).normalize(), "f")


def _regions(key: str) -> str:
    low = key.lower()
    for marker, region in (("eu.", "eu"), ("/eu/", "eu"), ("europe", "eu"), ("apac.", "apac"),
                           ("us.", "us"), ("/us/", "us")):
        if marker in low:
            return region
    return "us|eu"


def convert(prices: dict[str, Any], source: str) -> list[dict[str, str]]:
    rows = []
    for key, info in sorted(prices.items()):
        if not isinstance(info, dict) or info.get("mode") not in KEPT_MODES:
            continue
        provider = str(info.get("litellm_provider", "")).strip()
        if not provider:
            continue
        model = key.split("/", 1)[1] if key.startswith(provider + "/") else key
        rows.append({
            "provider": provider, "model": model, "mode": str(info["mode"]),
            "context_window": str(int(info.get("max_input_tokens") or info.get("max_tokens") or 0)),
            "max_output_tokens": str(int(info.get("max_output_tokens") or 0)),
            "input_usd_per_mtok": _per_mtok(info.get("input_cost_per_token")),
            "output_usd_per_mtok": _per_mtok(info.get("output_cost_per_token")),
            "cached_input_usd_per_mtok": _per_mtok(info.get("cache_read_input_token_cost")),
            "regions": _regions(key), "source": source,
        })
    return rows


def fetch_litellm_prices(workdir: Path, index: str = "https://pypi.org/pypi") -> tuple[dict[str, Any], str]:
    """Download the newest litellm wheel through PyPI's JSON API and read the price table out of it."""
    meta_url = httpx.URL(f"{index}/litellm/json")
    meta = httpx.get(meta_url, timeout=60, follow_redirects=True).json()
    version = meta["info"]["version"]
    wheel = next(u for u in meta["urls"] if u["packagetype"] == "bdist_wheel")
    path = workdir / wheel["filename"]
    with httpx.stream("GET", meta_url.join(wheel["url"]), timeout=300, follow_redirects=True) as resp:
        resp.raise_for_status()
        with path.open("wb") as fh:
            for chunk in resp.iter_bytes():
                fh.write(chunk)
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(PRICE_MEMBER)), f"pypi:litellm=={version}"


def refresh(json_file: Path | None = None, out: Path = CATALOG_FILE) -> int:
    """Write the catalog; returns the number of models. `json_file` skips the download."""
    if json_file is not None:
        prices, source = json.loads(json_file.read_text()), f"file:{json_file.name}"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            prices, source = fetch_litellm_prices(Path(tmp))
    rows = convert(prices, source)
    if LOCAL_FILE.exists():
        with LOCAL_FILE.open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
