"""The configuration reference is generated from the settings models and kept current."""

from __future__ import annotations

from pydantic import BaseModel

from streamgate.config import Settings
from streamgate.config_reference import DOC, field_comments, render


def test_the_committed_reference_is_what_the_models_say() -> None:
    assert DOC.read_text() == render(), "run `streamgate config reference` and commit docs/configuration.md"


def test_every_key_the_loader_accepts_is_in_the_reference() -> None:
    text = render()

    def keys(model: type[BaseModel], prefix: str) -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                out += keys(annotation, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}")
        return out

    missing = [k for k in keys(Settings, "") if f"`{k}`" not in text]
    assert not missing


def test_comments_attach_to_the_field_below_them() -> None:
    class Example(BaseModel):
        #: first line
        #: second line
        a: int = 1
        b: int = 2  # a trailing comment is not documentation

        c: int = 3

    assert field_comments(Example) == {"a": "first line second line"}
