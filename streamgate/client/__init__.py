"""What a producing service imports: build a request, send it, learn it was delivered, get its answer."""

from streamgate.client.exceptions import (
    DeliveryError,
    GatewayError,
    InvalidRequestError,
    ReplyTimeoutError,
    RequestFailedError,
    RequestRejectedError,
)
from streamgate.client.gateway import AsyncGatewayClient, GatewayClient
from streamgate.client.producer import AsyncRequestProducer, DeliveryReport, RequestProducer, build_request
from streamgate.client.request import ChatMessage, ChatRequest, Params, hash_api_key

__all__ = [
    "AsyncGatewayClient",
    "AsyncRequestProducer",
    "ChatMessage",
    "ChatRequest",
    "DeliveryError",
    "DeliveryReport",
    "GatewayClient",
    "GatewayError",
    "InvalidRequestError",
    "Params",
    "ReplyTimeoutError",
    "RequestFailedError",
    "RequestProducer",
    "RequestRejectedError",
    "build_request",
    "hash_api_key",
]
