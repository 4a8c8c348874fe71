"""The front door: OpenAI- (`/v1/chat/completions`) and Anthropic-compatible (`/v1/messages`) HTTP over the
stream, for services that want an answer back. `streamgate serve` runs it (`frontdoor.serve`)."""

from frontdoor.exceptions import ApiError
from frontdoor.server import FrontDoor

__all__ = ["ApiError", "FrontDoor"]
