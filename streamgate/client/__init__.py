"""What a producing service imports: build a request, send it, learn it was delivered."""

from streamgate.client.producer import (
    AsyncRequestProducer,
    DeliveryError,
    DeliveryReport,
    InvalidRequestError,
    RequestProducer,
    build_request,
)
from streamgate.client.request import ChatMessage, ChatRequest, Params, hash_api_key

__all__ = [
    "AsyncRequestProducer",
    "ChatMessage",
    "ChatRequest",
    "DeliveryError",
    "DeliveryReport",
    "InvalidRequestError",
    "Params",
    "RequestProducer",
    "build_request",
    "hash_api_key",
]
