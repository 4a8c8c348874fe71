"""What a call asks for, whichever API it came in: the part of a Request event the caller decides.

Both wire formats parse into a `Draft`; the server adds who is asking (from the key) and where to reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Draft:
    model: str
    messages: list[dict[str, Any]]
    #: the Request's `params` (streamgate.client.request.Params fields)
    params: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    #: OpenAI `stream_options.include_usage`: a last chunk with the usage
    include_usage: bool = False


def text_of(content: Any, where: str) -> str:
    """Message content as text: a string, or a list of text parts (other part kinds are refused)."""
    from frontdoor.exceptions import invalid

    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or "type" not in part:
                raise invalid(f"{where}[{i}] must be an object with a type", param=where)
            if part["type"] != "text" or not isinstance(part.get("text"), str):
                raise invalid(f"{where}[{i}]: content of type {part['type']!r} is not supported (text only)",
                              param=where)
            texts.append(part["text"])
        return "".join(texts)
    raise invalid(f"{where} must be a string or a list of content parts", param=where)
