"""`streamgate s3`: the local S3-compatible server (MinIO) that an `s3://` lakehouse root can live on."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from apps.cli.common import ConfigOption, fail, settings_or_exit
from streamgate.objectstore import MINIO_VERSION, ObjectStoreError, build_minio, local_server
from streamgate.storage import ObjectPath

app = typer.Typer(help="Run a local S3-compatible server (MinIO) for a lakehouse on object storage.",
                  no_args_is_help=True)


@app.command()
def up(config: Path | None = ConfigOption) -> None:
    """Start the server (building it on first use), and create the bucket of an s3:// lakehouse root."""
    started = time.perf_counter()
    settings = settings_or_exit(config)
    server = local_server(settings)
    try:
        status = server.up()
        root = settings.table_root()
        if isinstance(root, ObjectPath):
            server.create_bucket(root.bucket)
    except ObjectStoreError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"s3: {status.message} ({time.perf_counter() - started:.1f} s); data in {status.data_dir}")
    if not isinstance(root, ObjectPath):
        typer.echo("s3: to keep the lakehouse here, set lakehouse.root: s3://streamgate/lakehouse and "
                   f"lakehouse.object_store.endpoint: {status.endpoint}")
    elif settings.lakehouse.object_store.access_key_id is None:
        typer.echo(f"s3: root credentials generated in {settings.state_dir / 's3' / 'credentials.json'} "
                   "(0600); streamgate uses them when the credential variables are unset")


@app.command()
def down(config: Path | None = ConfigOption) -> None:
    """Stop the server; its data is kept for the next `up`."""
    typer.echo(f"s3: {local_server(settings_or_exit(config)).down().message}")


@app.command()
def status(config: Path | None = ConfigOption) -> None:
    """Say whether the server runs and answers; exit 1 when it does not."""
    st = local_server(settings_or_exit(config)).status()
    typer.echo(f"s3: {st.message} (data: {st.data_dir})")
    if not st.running:
        raise typer.Exit(1)


@app.command()
def build() -> None:
    """Build the MinIO server from its Go module into the tools cache (done by `up` when needed)."""
    try:
        binary = build_minio()
    except ObjectStoreError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"s3: MinIO {MINIO_VERSION} ready at {binary}")
