"""Read a component's /metrics and /healthz over HTTP, as Prometheus and a liveness probe would."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = list[tuple[str, dict[str, str], float]]


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    families = text_string_to_metric_families(text)
    return [(s.name, dict(s.labels), s.value) for f in families for s in f.samples]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == x for k, x in labels.items()))


def health(port: int) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _, _ in samples)


def wait_for(port: int, done: Callable[[Samples], bool], timeout_s: float = 60) -> Samples:
    """Scrape until `done` holds (the endpoint may not be up yet); the last scrape either way."""
    deadline, samples = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
        except httpx.HTTPError:
            samples = []
        if samples and done(samples):
            return samples
        time.sleep(0.5)
    return samples
