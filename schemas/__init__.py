"""The shared contracts of streamgate: event schemas, codecs, errors and topic names.

Every stage imports these from here, so a change to a contract is a change in one place.
"""

from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog, schema_fingerprint
from schemas.codec import ConfluentCodec, SingleObjectCodec, TopicCodec, make_codec
from schemas.compat import check_backward
from schemas.deadletter import dead_letter, dead_letter_from_error
from schemas.errors import (
    EventDecodeError,
    EventEncodeError,
    MalformedEventError,
    UnknownSchemaError,
    WrongSchemaError,
)
from schemas.events import EventType

__all__ = [
    "ConfluentCodec",
    "EventDecodeError",
    "EventEncodeError",
    "EventType",
    "MalformedEventError",
    "SchemaCatalog",
    "SchemaVersion",
    "SingleObjectCodec",
    "TopicCodec",
    "UnknownSchemaError",
    "WrongSchemaError",
    "check_backward",
    "dead_letter",
    "dead_letter_from_error",
    "default_catalog",
    "make_codec",
    "schema_fingerprint",
]
