"""A front-door 504 (accepted, not answered in time) tells the official SDKs not to resend the request:
it is still in the pipeline, which will answer and bill it, so a retry would be a second request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web

from frontdoor.exceptions import ApiError
from frontdoor.server import ANTHROPIC, OPENAI, Wire, error_response, still_queued
from tests.helpers.http_server import ThreadedServer


class _Door(ThreadedServer):
    """A real HTTP server answering every call with one front-door error, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: ApiError = still_queued("r-1", 120)
        super().__init__(self._routes)

    def _routes(self, app: web.Application) -> None:
        def answer(wire: Wire) -> Any:
            async def handler(_: web.Request) -> web.Response:
                self.calls += 1
                return error_response(wire, self.error, "r-1")
            return handler

        app.router.add_post("/v1/chat/completions", answer(OPENAI))
        app.router.add_post("/v1/messages", answer(ANTHROPIC))


@pytest.fixture(scope="module")
def door() -> Iterator[_Door]:
    server = _Door()
    yield server
    server.stop()


def _openai_calls(door: _Door) -> int:
    before = door.calls
    client = openai.OpenAI(base_url=door.url + "/v1", api_key="sk-test", max_retries=2)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 504
    return door.calls - before


def test_the_openai_sdk_does_not_resend_a_request_still_in_the_pipeline(door: _Door) -> None:
    door.error = still_queued("r-1", 120)
    assert _openai_calls(door) == 1


def test_the_anthropic_sdk_does_not_resend_it_either(door: _Door) -> None:
    door.error, before = still_queued("r-1", 120), door.calls
    client = anthropic.Anthropic(base_url=door.url, api_key="sk-test", max_retries=2)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="claude-3-5-haiku", max_tokens=16,
                               messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 504
    assert door.calls - before == 1


def test_without_the_header_the_sdk_would_send_it_three_times(door: _Door) -> None:
    """The control: the same 504 without `x-should-retry` is retried by the SDK's default policy."""
    door.error = ApiError(504, "timeout", "no answer in time", code="timeout")
    assert _openai_calls(door) == 3


@pytest.mark.parametrize(("header", "expected"), [
    (None, 120.0), ("30", 30.0), ("600", 120.0), ("0", 120.0), ("soon", 120.0), ("nan", 120.0)])
def test_the_deadline_is_the_door_timeout_or_the_sdks_own_when_shorter(header: str | None,
                                                                        expected: float) -> None:
    from aiohttp.test_utils import make_mocked_request

    from frontdoor.server import SDK_TIMEOUT_HEADER, deadline_s

    headers = {SDK_TIMEOUT_HEADER: header} if header is not None else {}
    assert deadline_s(make_mocked_request("POST", "/v1/chat/completions", headers=headers), 120.0) == expected
