"""Numbers in URLs and headers are ASCII digits, over a real uvicorn: anything else is a 4xx naming it.

`str.isdigit()` is true for `²`, `①` and `⁰`, which `int()` refuses: each such request was a 500
with a traceback in the log (and 1006 on a WebSocket). A property test sends arbitrary text and
bytes in every numeric parameter and header: never a 5xx. And the last-resort 500, for a fault
no handler knows, carries the same security headers and request id as every other answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_sync

from server.parsing import ascii_int
from tests.conftest import LiveServer
from tests.e2e.test_api import assert_problem, assert_unchanged
from tests.e2e.test_bad_inputs import captured_logs

UNICODE_DIGITS = ["²", "①", "⁰", "٣", "१", "𝟗", "1²"]


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # parameters are parsed at the edge, before any engine is asked


@pytest.fixture
async def post(server: LiveServer) -> dict[str, Any]:
    await server.create_blog("b1")
    response = await server.publish(headline="v1")
    assert response.status_code == 201
    post: dict[str, Any] = response.json()["post"]
    return post


def assert_refused_with_headers(response: httpx.Response, status: int, field: str) -> None:
    assert_problem(response, status, field)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers["x-request-id"]) == 16


def if_match(server: LiveServer, value: bytes) -> dict[bytes, bytes]:
    return {b"Authorization": server.auth()["Authorization"].encode(), b"If-Match": value}


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
async def test_unicode_digits_in_query_parameters_are_422_naming_them(server: LiveServer, post: dict[str, Any],
                                                                      digit: str) -> None:
    with captured_logs() as lines:
        for url, field in ((f"/api/blogs/b1/events?since={digit}", "since"),
                           (f"/api/blogs/b1/posts?limit={digit}", "limit"),
                           (f"/sse/blogs/b1?since={digit}", "since")):
            assert_refused_with_headers(await server.http.get(url), 422, field)
    assert not [line for line in lines if '"level":"error"' in line]


async def test_a_raw_non_ascii_byte_in_last_event_id_or_if_match_is_refused(server: LiveServer,
                                                                            post: dict[str, Any]) -> None:
    """A `0xB2` byte reads as `²` in latin-1: refused naming the header, and nothing changes."""
    before = await server.blog()
    sse = await server.http.get("/sse/blogs/b1", headers={b"Last-Event-ID": b"\xb2"})
    assert_refused_with_headers(sse, 422, "Last-Event-ID")
    url = f"/api/blogs/b1/posts/{post['id']}"
    for value in (b'"\xb2"', b"\xb2", b'W/"\xb9"'):
        headers = if_match(server, value)
        assert_refused_with_headers(await server.http.patch(url, json={"headline": "v2"}, headers=headers), 400,
                                    "If-Match")
        assert_refused_with_headers(await server.http.delete(url, headers=headers), 400, "If-Match")
    await assert_unchanged(server, before)


async def test_a_unicode_since_on_a_websocket_closes_with_1008(server: LiveServer, post: dict[str, Any]) -> None:
    for query in ("since=%C2%B2&epoch=abc", "since=%E2%91%A0", "since=1&epoch=%C3%A9t%C3%A9"):
        async with connect(f"{server.ws_base}/ws/blogs/b1?{query}") as connection:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(connection.recv(), 5)
            assert connection.close_code == 1008, query
            reason = connection.close_reason or ""
            assert "since" in reason or "epoch" in reason, query


async def test_the_last_resort_500_carries_the_security_headers_and_the_request_id(server: LiveServer) -> None:
    """A fault no handler knows (here: the engine raising a plain RuntimeError) is a 500 problem with the
    headers of every other answer, and one log line with its traceback and request id."""
    engine: Any = server.services.engine

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    engine.list_blogs = broken
    with captured_logs() as lines:
        response = await server.http.get("/api/blogs", headers={"X-Request-ID": "fault-1"})
    assert_problem(response, 500)
    assert response.json()["code"] == "internal_error"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"] == "fault-1"
    errors = [orjson.loads(line) for line in lines if '"level":"error"' in line]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == "fault-1" and "RuntimeError: a bug" in errors[0]["error"]


def test_ascii_int_takes_ascii_digits_only() -> None:
    assert [ascii_int(text) for text in ("0", "42", "007", "9" * 15)] == [0, 42, 7, 10**15 - 1]
    for text in ("", " 1", "1 ", "+1", "-1", "1_000", "1e3", "0x10", "9" * 16, *UNICODE_DIGITS):
        assert ascii_int(text) is None, text


# Property: no value of a numeric parameter or header gets a 5xx (or an abnormal WebSocket close).

TEXT = st.one_of(st.text(max_size=24), st.sampled_from(UNICODE_DIGITS), st.from_regex(r"\A[0-9]{1,20}\Z"))
# Any byte a client can put in a header value (an HTTP client refuses control characters itself).
HEADER = st.one_of(st.binary(max_size=24).map(lambda raw: bytes(c for c in raw if c == 9 or 32 <= c != 127).strip()),
                   st.sampled_from([b"\xb2", b'"\xb2"', b'W/"\xb9"', b'"\xd9\xa3"']))
QUERIES = ["/api/blogs/b1/events?since={}", "/api/blogs/b1/events?since=0&limit={}",
           "/api/blogs/b1/events?since=1&epoch={}", "/api/blogs/b1/posts?limit={}", "/sse/blogs/b1?since={}",
           "/sse/blogs/b1?since=1&epoch={}"]


def _never_5xx(server: LiveServer, post_id: str) -> None:
    client = httpx.Client(base_url=server.base, timeout=10)

    def get(url: str, **kwargs: Any) -> int:
        with client.stream("GET", url, **kwargs) as response:  # a stream that opens is not read
            return response.status_code

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(query=st.sampled_from(QUERIES), value=TEXT, header=HEADER)
    def check(query: str, value: str, header: bytes) -> None:
        assert get(query.format(quote(value, safe=""))) < 500
        assert get("/sse/blogs/b1", headers={b"Last-Event-ID": header}) < 500
        patched = client.patch(f"/api/blogs/b1/posts/{post_id}", json={"headline": "same"},
                               headers=if_match(server, header))
        assert patched.status_code < 500
        query = f"since={quote(value, safe='')}&epoch={quote(value[::-1], safe='')}"
        with connect_sync(f"{server.ws_base}/ws/blogs/b1?{query}", open_timeout=5) as ws:
            with contextlib.suppress(ConnectionClosed):
                ws.recv(timeout=5)
            ws.close()
            assert ws.close_code in (None, 1000, 1008), ws.close_code

    try:
        check()
    finally:
        client.close()


async def test_no_numeric_parameter_or_header_value_gets_a_5xx(server: LiveServer, post: dict[str, Any]) -> None:
    await asyncio.to_thread(_never_5xx, server, post["id"])
