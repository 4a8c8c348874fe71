"""One small HTTP server per component: `/metrics` (Prometheus text) and `/healthz` (200 or 503, JSON).

It runs on a daemon thread, so it serves alike beside a blocking poll loop, asyncio or faust, and keeps
answering (with 503) when the component's loop is stuck: that is what a liveness probe must see. A port
already in use is a warning, not a crash: the component's work matters more than its metrics.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from streamgate.config import Settings
from streamgate.observability.metrics import LAST_PROGRESS

log = logging.getLogger("streamgate.metrics")


class Heartbeat:
    """The component's loop calls `beat()` each time round (one attribute store); health reads its age."""

    def __init__(self, component: str, stale_after_s: float) -> None:
        self.component, self.stale_after_s = component, stale_after_s
        self.last = time.monotonic()  # starting counts as progress: start-up may take a while
        self.started = time.time()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        gap = time.time() - time.monotonic()
        LAST_PROGRESS.labels(component).set_function(lambda: self.last + gap)

    def beat(self) -> None:
        self.last = time.monotonic()

    def status(self) -> tuple[bool, dict[str, object]]:
        age = time.monotonic() - self.last
        alive = age <= self.stale_after_s
        return alive, {"status": "ok" if alive else "stale", "component": self.component, "pid": os.getpid(),
                       "last_progress_s_ago": round(age, 3), "stale_after_s": self.stale_after_s,
                       "uptime_s": round(time.time() - self.started, 1)}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_metrics(settings: Settings, component: str, port: int | None = None) -> Heartbeat:
    """Start `component`'s endpoint on `port` (default: `metrics.ports.<component>`; 0: none)."""
    beat = Heartbeat(component, settings.metrics.stale_after_s)
    chosen = settings.metrics.port(component) if port is None else port
    if not chosen:
        return beat

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            elif path in ("/healthz", "/health"):
                alive, body = beat.status()
                self._send(200 if alive else 503, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "text/plain", b"try /metrics or /healthz\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            return

    try:
        server = ThreadingHTTPServer((settings.metrics.host, chosen), Handler)
    except OSError as exc:
        log.warning("%s: metrics endpoint off, cannot listen on %s:%s (%s)", component,
                    settings.metrics.host, chosen, exc)
        return beat
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"metrics-{component}", daemon=True).start()
    beat._server, beat.port = server, int(server.server_address[1])
    log.info("%s: metrics on http://%s:%d/metrics, health on /healthz", component, settings.metrics.host,
             beat.port)
    return beat
