"""The `streamgate_kafka` path of the gateway benchmark: request-reply over Kafka with `AsyncGatewayClient`.

Built inside the load-generator process (bench/loadgen.py `AdapterPath`), so it takes only plain options.
It needs a running streamgate stack (request path, dispatcher) whose provider for `model` is the
benchmark's simulator; `streamgate bench gateway --streamgate-kafka-config <yaml>` names that stack's config.
"""

from __future__ import annotations

from typing import Any

from bench.loadgen import FailedRequestError
from streamgate.client import (
    AsyncGatewayClient,
    ReplyTimeoutError,
    RequestFailedError,
    RequestRejectedError,
)
from streamgate.config import load_settings


class GatewayClientAdapter:
    """`ChatAdapter` over `AsyncGatewayClient.chat`: rejected, failed and timed-out requests are counted
    under their own error kinds."""

    def __init__(self, config: str, api_key: str, team: str, project: str, timeout_s: float) -> None:
        self.config, self.api_key, self.team, self.project = config, api_key, team, project
        self.timeout_s = timeout_s
        self.client: AsyncGatewayClient | None = None

    async def open(self) -> None:
        settings = load_settings(self.config)
        client = AsyncGatewayClient(settings, api_key=self.api_key, timeout_s=self.timeout_s)
        self.client = await client.start()

    async def chat(self, model: str, prompt: str, max_tokens: int) -> None:
        assert self.client is not None, "open() first"
        try:
            response: dict[str, Any] = await self.client.chat(
                team=self.team, project=self.project, model=model,
                messages=[{"role": "user", "content": prompt}], params={"max_tokens": max_tokens})
        except RequestRejectedError as exc:
            raise FailedRequestError("rejected") from exc
        except RequestFailedError as exc:
            raise FailedRequestError("failed") from exc
        except ReplyTimeoutError as exc:
            raise FailedRequestError("timeout") from exc
        if not response.get("content"):
            raise FailedRequestError("bad_body")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
