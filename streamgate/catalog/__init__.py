"""The model catalog shared by validation, routing, dispatch and pricing."""

from streamgate.catalog.models import (
    ModelCatalog,
    ModelInfo,
    UnknownModelError,
    default_catalog,
    load_catalog,
)

__all__ = ["ModelCatalog", "ModelInfo", "UnknownModelError", "default_catalog", "load_catalog"]
