"""`streamgate report`: the lakehouse as one HTML page of charts, written to a file or served locally."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit
from streamgate.config import Settings


def run(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the page here "
                                       "(default: <state_dir>/report.html)."),
    serve: int | None = typer.Option(None, "--serve", min=1, max=65535,
                                     help="Serve the page on this port instead (fresh on every load)."),
    host: str = typer.Option("127.0.0.1", help="Address to serve on, with --serve."),
    config: Path | None = ConfigOption,
) -> None:
    """Charts of spend, latency, errors, fallbacks, guardrail hits and cache hits from the Delta tables."""
    from apps.report.page import write_report

    if output is not None and serve is not None:
        raise fail("choose one of --output and --serve", 2)
    settings = settings_or_exit(config)
    if serve is None:
        path = write_report(settings, output or settings.state_dir / "report.html")
        typer.echo(f"report written to {path}")
        return
    _serve(settings, host, serve)


def _serve(settings: Settings, host: str, port: int) -> None:
    from apps.report.data import load_report_data
    from apps.report.page import render_page

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/", "/report.html"):
                self.send_error(404)
                return
            body = render_page(load_report_data(settings)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc}") from exc
    typer.echo(f"report on http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
