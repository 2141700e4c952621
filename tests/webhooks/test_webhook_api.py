"""Bad input to the webhook API: 422 naming the field, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.webhooks.conftest import AUTH, WEBHOOK_SETTINGS, Receiver


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # refused at the edge, before any storage is asked


@pytest.fixture
async def server(start_server: Any) -> LiveServer:
    live: LiveServer = await start_server(**WEBHOOK_SETTINGS)
    return live


GOOD = {"url": "http://127.0.0.1:9/hook", "blogs": ["b1"], "events": ["post.created"]}


@pytest.mark.parametrize(("change", "field"), [
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://user:secret@example.com/hook"}, "url"),
    ({"url": ""}, "url"),
    ({"url": 7}, "url"),
    ({"events": ["post.published"]}, "events.0"),
    ({"events": []}, "events"),
    ({"events": ["*", "post.created"]}, "events"),
    ({"blogs": ["Not A Slug"]}, "blogs.0"),
    ({"blogs": []}, "blogs"),
    ({"blogs": ["*", "b1"]}, "blogs"),
    ({"description": "two\nlines"}, "description"),
    ({"secret": "whsec_mine"}, "secret"),
    ({"retries": 3}, "retries"),
])
async def test_bad_webhook_input_is_422_naming_the_field(server: LiveServer, receiver: Receiver,
                                                         change: dict[str, Any], field: str) -> None:
    response = await server.http.post("/api/webhooks", headers=AUTH, json={**GOOD, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert (await server.http.get("/api/webhooks", headers=AUTH)).json()["webhooks"] == []


async def test_a_missing_field_is_named(server: LiveServer) -> None:
    response = await server.http.post("/api/webhooks", headers=AUTH, json={"url": GOOD["url"], "blogs": ["b1"]})
    assert response.status_code == 422 and response.json()["field"] == "events"


async def test_unknown_webhook_ids_are_404(server: LiveServer) -> None:
    for path in ("/api/webhooks/wh0000", "/api/webhooks/NOPE!", "/api/webhooks/wh0000/deliveries"):
        response = await server.http.get(path, headers=AUTH)
        assert response.status_code == 404 and response.json()["code"] == "unknown_webhook", path
    assert (await server.http.delete("/api/webhooks/wh0000", headers=AUTH)).status_code == 404


async def test_the_number_of_endpoints_is_bounded(start_server: Any, receiver: Receiver) -> None:
    live: LiveServer = await start_server(**{**WEBHOOK_SETTINGS, "webhook_max_endpoints": 2})
    body = {"url": receiver.url, "blogs": ["*"], "events": ["*"]}
    for _ in range(2):
        assert (await live.http.post("/api/webhooks", headers=AUTH, json=body)).status_code == 201
    refused = await live.http.post("/api/webhooks", headers=AUTH, json=body)
    assert refused.status_code == 409 and refused.json()["code"] == "too_many_webhooks"


async def test_a_bad_deliveries_limit_is_422(server: LiveServer, receiver: Receiver) -> None:
    created = await server.http.post("/api/webhooks", headers=AUTH,
                                     json={"url": receiver.url, "blogs": ["*"], "events": ["*"]})
    for limit in ("0", "101", "x", "-1"):
        response = await server.http.get(f"/api/webhooks/{created.json()['id']}/deliveries?limit={limit}",
                                         headers=AUTH)
        assert response.status_code == 422 and response.json()["field"] == "limit", limit
