"""Who wrote what: an accepted write leaves one log line carrying its token's subject, never the token."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson

from server.auth import mint_token
from server.logs import JsonFormatter, TextFormatter
from tests.conftest import JWT_SECRET, LiveServer


@contextlib.contextmanager
def captured(formatter: logging.Formatter) -> Iterator[io.StringIO]:
    """livepush's log lines at info level, formatted as `livepush serve` formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("livepush")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def api_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "livepush.api"]


async def test_a_write_with_a_scoped_token_is_logged_with_its_subject_and_never_the_token(
        server: LiveServer, blog: dict[str, Any]) -> None:
    token = mint_token(JWT_SECRET, ["b1"], 300, subject="desk-alice")
    with captured(JsonFormatter()) as stream:
        published = await server.publish("b1", headers={"Authorization": f"Bearer {token}"}, headline="Kick-off")
        assert published.status_code == 201
        post_id = published.json()["post"]["id"]
        edited = await server.http.patch(f"/api/blogs/b1/posts/{post_id}", json={"pinned": True},
                                         headers={"Authorization": f"Bearer {token}"})
        assert edited.status_code == 200
        assert (await server.http.get("/api/session", headers={"Authorization": f"Bearer {token}"})).is_success
    lines = api_lines(stream)
    assert [(line["message"], line["subject"], line["request_id"], line["level"]) for line in lines] == [
        ("POST /api/blogs/b1/posts 201", "desk-alice", published.headers["x-request-id"], "info"),
        (f"PATCH /api/blogs/b1/posts/{post_id} 200", "desk-alice", edited.headers["x-request-id"], "info"),
    ]  # reads (the session check) leave no line
    output = stream.getvalue()
    assert token not in output and token.split(".")[2] not in output


async def test_the_admin_token_is_logged_as_admin_and_refused_writes_leave_no_line(
        server: LiveServer, blog: dict[str, Any]) -> None:
    outsider = mint_token(JWT_SECRET, ["other"], 300, subject="desk-bob")
    with captured(TextFormatter("%(name)s: %(message)s")) as stream:
        assert (await server.publish("b1", headline="By the desk")).status_code == 201
        refused = await server.publish("b1", headers={"Authorization": f"Bearer {outsider}"})
        assert refused.status_code == 403
    assert stream.getvalue().splitlines() == ["livepush.api: POST /api/blogs/b1/posts 201 (subject 'admin')"]
