"""Hostile or broken HTTP input over a real uvicorn: a clear refusal naming the cause, and nothing changed.

These complete the rows of docs/SECURITY.md that tests/e2e/test_api.py does not already cover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from server.auth import mint_token
from server.logs import JsonFormatter
from tests.conftest import ADMIN_TOKEN, JWT_SECRET, LiveServer
from tests.e2e.test_api import assert_problem, assert_unchanged

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # what is refused here is refused at the edge, before any engine is asked


@pytest.fixture
async def blog(server: LiveServer) -> dict[str, Any]:
    return await server.create_blog("b1", title="Test blog")


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"headline": "a", "headline": "b"}', "headline"),
    (b'{"headline": "a", "pinned": true, "pinned": false}', "pinned"),
])
async def test_a_key_given_twice_is_400_naming_it(server: LiveServer, blog: dict[str, Any], raw: bytes,
                                                  field: str) -> None:
    """Parsers disagree on which duplicate wins (a proxy may check the first, we would keep the last): neither."""
    response = await server.http.post("/api/blogs/b1/posts", content=raw, headers={**server.auth(), **JSON})
    assert assert_problem(response, 400, field)["code"] == "duplicate_key"
    await assert_unchanged(server, blog)


@pytest.mark.parametrize(("raw", "status", "field"), [
    (b'{"headline": "x", "pinned": 1e400}', 400, None),
    (b'{"headline": "x", "pinned": ' + b"9" * 5000 + b"}", 400, None),
    (b'{"headline": "x", "published_at": 18446744073709551616}', 422, "published_at"),
])
async def test_huge_numbers_are_refused(server: LiveServer, blog: dict[str, Any], raw: bytes, status: int,
                                        field: str | None) -> None:
    response = await server.http.post("/api/blogs/b1/posts", content=raw, headers={**server.auth(), **JSON})
    assert_problem(response, status, field)
    await assert_unchanged(server, blog)


async def test_a_token_in_the_query_string_is_ignored(server: LiveServer, blog: dict[str, Any]) -> None:
    """Only Authorization counts: a token in a URL (which proxies and logs keep) grants nothing."""
    for param in ("access_token", "token", "jwt"):
        response = await server.http.post(f"/api/blogs/b1/posts?{param}={ADMIN_TOKEN}", json={"headline": "x"})
        assert_problem(response, 401, "Authorization")
    await assert_unchanged(server, blog)


async def test_a_garbage_if_match_is_400_and_changes_nothing(server: LiveServer, blog: dict[str, Any]) -> None:
    post = (await server.publish(headline="v1")).json()["post"]
    before = await server.blog()
    url = f"/api/blogs/b1/posts/{post['id']}"
    for value in ("banana", '"-1"', '"1e3"', '"9999999999999999"', 'W/"x"', "", "1 2", '"'):
        headers = {**server.auth(), "If-Match": value}
        patched = await server.http.patch(url, json={"headline": "v2"}, headers=headers)
        assert patched.status_code == 400, value
        assert_problem(patched, 400, "If-Match")
        assert_problem(await server.http.delete(url, headers=headers), 400, "If-Match")
    assert (await server.http.get(url)).json() == post
    await assert_unchanged(server, before)


BAD_TOKENS = ("no_exp", "no_sub", "hs512_same_secret", "blogs_as_a_string", "nbf_in_the_future", "iat_in_the_future",
              "signature_stripped")


def _bad_token(case: str) -> str:
    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {"sub": "desk", "aud": "livepush", "iat": now, "exp": now + 3600, "blogs": ["b1"]}
    algorithm = "HS256"
    if case == "no_exp":
        del claims["exp"]
    elif case == "no_sub":
        del claims["sub"]
    elif case == "hs512_same_secret":
        algorithm = "HS512"
    elif case == "blogs_as_a_string":
        claims["blogs"] = "*"
    elif case == "nbf_in_the_future":
        claims["nbf"] = now + 3600
    elif case == "iat_in_the_future":
        claims["iat"] = now + 3600
    with warnings.catch_warnings():  # the test secret is short for HS512: the point is that HS512 is refused
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token = jwt.encode(claims, JWT_SECRET, algorithm=algorithm)
    if case == "signature_stripped":
        token = token.rsplit(".", 1)[0] + "."
    return token


async def test_more_bad_scoped_tokens_are_401(server: LiveServer, blog: dict[str, Any]) -> None:
    """Beyond test_api's cases: the algorithm is pinned, exp and sub are required, and claims are typed."""
    for case in BAD_TOKENS:
        response = await server.publish(headers=server.auth(_bad_token(case)))
        assert response.status_code == 401, case
        assert_problem(response, 401, "Authorization")
    await assert_unchanged(server, blog)


def _signed(payload: bytes) -> str:
    """A token over *payload* exactly as written, signed right (so only the claims can be to blame)."""
    import jwt

    return jwt.api_jws.PyJWS().encode(payload, JWT_SECRET, algorithm="HS256")


def _claims(**changes: Any) -> bytes:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "desk", "aud": "livepush", "iat": now, "exp": now + 3600, "blogs": ["b1"]}
    return json.dumps({**claims, **changes}).encode()  # the stdlib: it writes 10**30 as digits


@pytest.mark.parametrize("payload", [
    # The first `blogs` names another blog; a last-wins reader would let this token write b1.
    _claims(blogs=["other"])[:-1] + b',"blogs":["b1"]}',
    _claims(exp=str(int(time.time()) + 3600)),
    _claims(exp=1e300),
    _claims(exp=10**30),
    _claims(iat=float(int(time.time()))),
    _claims(exp=int(time.time()) + 2 * 366 * 86400),
    _claims(sub="admin"),
    _claims(sub="Admin "),
    _claims(sub=""),
], ids=["duplicate_blogs", "exp_as_string", "exp_1e300", "exp_10e30", "iat_as_float", "two_years", "sub_admin",
        "sub_Admin", "sub_empty"])
async def test_scoped_tokens_with_ambiguous_or_unbounded_claims_are_401(server: LiveServer, blog: dict[str, Any],
                                                                       payload: bytes) -> None:
    """Signed with the right secret, yet refused: a claim given twice, a time that is not whole seconds or
    never ends, or the admin's own subject (whose idempotency results, rate bucket and log name are its own)."""
    response = await server.publish(headers=server.auth(_signed(payload)))
    assert_problem(response, 401, "Authorization")
    await assert_unchanged(server, blog)
    assert (await server.publish(headers=server.auth(_signed(_claims())))).status_code == 201  # the control


def test_livepush_token_refuses_the_admin_subject_and_endless_lifetimes() -> None:
    from server.cli import main

    env = {"LIVEPUSH_JWT_SECRET": JWT_SECRET}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(["token", "--blog", "b1", "--subject", "admin"]) == 2
        assert main(["token", "--blog", "b1", "--ttl", "400d"]) == 2
        assert main(["token", "--blog", "b1", "--ttl", "²"]) == 2


@pytest.mark.parametrize(("header", "status"), [
    (b"abc\rInjected: 1", 400),          # a bare CR inside a header value: not HTTP
    (b"abc\x1b[31mred", 400),            # an ANSI escape: not a valid header character
    (b"abc%0d%0aInjected:%201", 200),    # encoded CR/LF: valid HTTP, but not a request id we echo
    (b"x" * 65, 200),                    # longer than 64 characters
])
async def test_request_ids_with_cr_lf_or_escapes_are_never_echoed(server: LiveServer, header: bytes,
                                                                  status: int) -> None:
    """A request id that could forge a log line or a header is refused or replaced, never repeated."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Request-ID: " + header
                     + b"\r\n\r\n")
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), raw[:200]
    assert b"Injected" not in head and b"\x1b" not in head and header not in head
    if status == 400:
        problem = orjson.loads(body)
        assert problem["code"] == "malformed_request" and problem["status"] == 400
    else:
        assert len(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"x-request-id"]) == 16


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every record of livepush's and uvicorn's loggers, at every level, as the JSON lines `serve` writes."""
    lines: list[str] = []
    formatter = JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Capture(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("livepush", "uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def test_logs_never_carry_tokens_or_bodies(server: LiveServer, blog: dict[str, Any]) -> None:
    """Access log on, debug level: good and bad tokens, in headers or URLs, and post bodies stay out of the logs."""
    scoped = mint_token(JWT_SECRET, ["b1"], 3600, subject="desk")
    wrong = "wrong-token-5f0c1d2e3a4b"
    secret_text = "embargoed-4f9a1c"
    with captured_logs() as lines:
        assert (await server.publish(headline=secret_text, body=f"<p>{secret_text}</p>")).status_code == 201
        assert (await server.publish(headers=server.auth(scoped), headline=secret_text)).status_code == 201
        assert (await server.publish(headers=server.auth(wrong))).status_code == 401
        assert (await server.http.post(f"/api/blogs/b1/posts?access_token={ADMIN_TOKEN}&token={scoped}",
                                       json={"headline": secret_text})).status_code == 401
        malformed = await server.http.post("/api/blogs/b1/posts", content=b'{"headline": "' + secret_text.encode(),
                                           headers={**server.auth(), **JSON})
        assert malformed.status_code == 400
        async with server.reader() as reader:  # a WebSocket access line
            assert (await reader.next())["type"] == "snapshot"
        await server.http.get(f"/sse/blogs/b1?since=x&jwt={scoped}")
    assert any("/api/blogs/b1/posts" in line for line in lines), "the access log was not captured"
    for line in lines:
        for secret in (ADMIN_TOKEN, scoped, wrong, secret_text):
            assert secret not in line, line
