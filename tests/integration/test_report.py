"""`streamgate report` on real Delta tables (landed from the real broker by the bronze sink, refined into
silver and gold), opened in headless Chromium: every chart drew every mark, with the tables' numbers."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from apps.cli.main import app
from apps.demo.processes import write_config
from apps.report.charts import count, usd
from streamgate.config import Settings
from tests.conftest import free_port
from tests.helpers.browser import dump_dom
from tests.helpers.lakehouse_data import land, pipeline_events

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHARTS = ("spend over time by team", "spend by team", "latency percentiles by provider",
          "error and fallback rates", "requests over time by outcome", "guardrail hits by entity",
          "guardrail verdicts", "cache hit rate over time", "cache hit rate by team")


def test_the_report_renders_every_chart_with_the_tables_data_in_chromium(
        settings: Settings, topics: dict[str, str], tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    events = pipeline_events(800, start_ms=now - 2 * 3600_000, span_ms=2 * 3600_000)
    land(settings, topics, events)
    page = tmp_path / "report.html"
    config = write_config(settings, tmp_path / "c.yaml")
    result = CliRunner().invoke(app, ["report", "--output", str(page), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # nothing fetched

    dom = dump_dom(page, tmp_path / "chromium")
    body = re.search(r'<body data-charts="(\d+)" data-charts-rendered="(\d+)"', dom)
    assert body and body.groups() == (str(len(CHARTS)), str(len(CHARTS))), "charts not all drawn"
    drawn = {label: (int(marks), int(rendered)) for marks, label, rendered in re.findall(
        r'<svg class="chart" data-marks="(\d+)"[^>]*aria-label="([^"]+)"[^>]*data-rendered="(\d+)"', dom)}
    assert set(drawn) == set(CHARTS)
    assert all(marks == rendered > 0 for marks, rendered in drawn.values()), drawn

    # the marks are the data: one bar per team, per entity type, per provider/model and percentile
    telemetry = events["telemetry"]
    teams = Counter(e["team"] for e in telemetry)
    targets = {(e["provider"], e["model"]) for e in telemetry}
    entities = Counter(x["type"] for v in events["guardrail.verdicts"] for x in v["entities"])
    assert drawn["spend by team"][0] == drawn["spend over time by team"][0] == len(teams)
    assert drawn["latency percentiles by provider"][0] == 3 * len(targets)
    assert drawn["guardrail hits by entity"][0] == len(entities)
    for entity, n in entities.items():
        assert f"<title>{entity}: {count(n)}</title>" in dom
    spend = sum(e["cost_nanousd"] for e in telemetry) / 1e9
    assert f"<b>{usd(spend)}</b><span>spend</span>" in dom
    outcomes = Counter(r["status"] for r in events["responses"])
    assert drawn["requests over time by outcome"][0] >= len(outcomes)
    assert f"<b>{count(sum(e['attempt'] == 1 for e in telemetry))}</b><span>requests</span>" in dom

    # served live: the same page, built from the tables on each load
    port = free_port()
    exe = Path(sys.executable).parent / "streamgate"
    server = subprocess.Popen([str(exe), "report", "--serve", str(port), "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        served = ""
        for _ in range(100):
            try:
                served = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert served.count('<svg class="chart"') == len(CHARTS) and usd(spend) in served
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=10).status_code == 404
    finally:
        server.terminate()
        server.wait(10)
