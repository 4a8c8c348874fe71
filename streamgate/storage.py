"""Where Delta tables live: a local directory or a location on S3-compatible object storage.

`Settings.table_root()` returns a `pathlib.Path` for a local root and an :class:`ObjectPath` for an
`s3://bucket/prefix` root. An ObjectPath joins with `/` and has `.name` like a path, and carries the
storage options that every Delta read and write of it needs, built once here from the settings
(:func:`storage_options`), so no call site assembles endpoints or credentials itself. The options hold
the secret key: an ObjectPath prints as its URI only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from streamgate.config import ObjectStoreSettings

SCHEMES = ("s3://", "s3a://")


def is_uri(root: str) -> bool:
    return root.startswith(SCHEMES)


def storage_options(store: ObjectStoreSettings) -> dict[str, str]:
    """delta-rs (object_store) options for the configured S3-compatible server.

    `commit_protocol: etag` sets conditional PUT: a Delta commit is written with `If-None-Match: *`, so
    of two writers racing for version N exactly one succeeds and the other retries on N+1 (its
    application transactions re-checked); `unsafe` allows a plain PUT, which is correct only with a
    single writer per table.
    """
    options = {"AWS_REGION": store.region}
    if store.endpoint:
        options["AWS_ENDPOINT_URL"] = store.endpoint
        if store.endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if store.path_style:
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    if store.access_key_id is not None:
        options["AWS_ACCESS_KEY_ID"] = store.access_key_id.get_secret_value()
    if store.secret_access_key is not None:
        options["AWS_SECRET_ACCESS_KEY"] = store.secret_access_key.get_secret_value()
    if store.commit_protocol == "etag":
        options["AWS_CONDITIONAL_PUT"] = "etag"
    else:
        options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return options


class ObjectPath:
    """An `s3://bucket/key` location with the storage options to reach it; joins like a path."""

    __slots__ = ("options", "uri")

    def __init__(self, uri: str, options: dict[str, str]) -> None:
        scheme, _, rest = uri.partition("://")
        self.uri = f"s3://{rest.strip('/')}" if scheme in ("s3", "s3a") else uri.rstrip("/")
        self.options = options

    def __truediv__(self, part: str | PurePath) -> ObjectPath:
        return ObjectPath(f"{self.uri}/{str(part).strip('/')}", self.options)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:  # never the options: they hold the secret key
        return f"ObjectPath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.uri.rsplit("/", 1)[0], self.options)

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def key(self) -> str:
        """The path inside the bucket ('' at the bucket's root)."""
        return self.uri.removeprefix("s3://").partition("/")[2]

    def filesystem(self) -> Any:
        """A pyarrow S3 filesystem for listing (Delta reads and writes go through delta-rs)."""
        from pyarrow import fs

        o = self.options
        return fs.S3FileSystem(
            access_key=o.get("AWS_ACCESS_KEY_ID"), secret_key=o.get("AWS_SECRET_ACCESS_KEY"),
            region=o.get("AWS_REGION"), endpoint_override=o.get("AWS_ENDPOINT_URL"),
            force_virtual_addressing=o.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") == "true")

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Entries matching `pattern`, whose parts are `*` or exact names (what the lakehouse needs:
        `*/*/_delta_log`). Listing is by delimiter, one level at a time."""
        from pyarrow import fs

        filesystem = self.filesystem()
        level = [self]
        for part in PurePosixPath(pattern).parts:
            found: list[ObjectPath] = []
            for parent in level:
                where = f"{parent.bucket}/{parent.key}".rstrip("/")
                if part == "*":
                    infos = filesystem.get_file_info(fs.FileSelector(where, allow_not_found=True))
                    found += [parent / info.base_name for info in infos if info.type == fs.FileType.Directory]
                elif filesystem.get_file_info(f"{where}/{part}").type != fs.FileType.NotFound:
                    found.append(parent / part)
            level = found
        yield from sorted(level, key=str)


#: A table's location: a local directory or an object-storage location.
TablePath = Union[Path, ObjectPath]  # noqa: UP007 - a runtime alias, used in isinstance-free annotations


def options_of(path: TablePath | str) -> dict[str, str] | None:
    """The storage options a Delta read or write of `path` needs (None for a local path)."""
    return path.options if isinstance(path, ObjectPath) else None
