"""The SSRF guard: loopback, private, link-local and metadata addresses are never called unless allowed.

Refusals happen before any connection: at creation from the URL alone (or its DNS answer), and
at every attempt from a fresh DNS answer, whose checked address is then the one connected to.
No test here sends a packet anywhere but to loopback.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from server.webhooks.guard import Guard, Refused
from server.webhooks.sender import Sender
from server.webhooks.signing import message_id, new_secret, sign
from tests.conftest import LiveServer, ServerFactory
from tests.webhooks.conftest import AUTH, WEBHOOK_SETTINGS, Receiver, deliveries, eventually, register


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # refused at the edge or in the sender, before any engine is asked


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://10.0.0.7/hook",
    "http://192.168.1.20:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://localhost:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://224.0.0.251/hook",
])
async def test_urls_that_reach_private_addresses_are_refused_at_creation(
        server: LiveServer, receiver: Receiver, url: str) -> None:
    response = await server.http.post("/api/webhooks", headers=AUTH, json={
        "url": url.format(port=receiver.port), "blogs": ["*"], "events": ["*"]})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "url" and problem["code"] == "invalid_field"
    assert "public address" in problem["detail"] or "neither a DNS name" in problem["detail"]
    assert (await server.http.get("/api/webhooks", headers=AUTH)).json()["webhooks"] == []
    assert receiver.requests == []


class Rebinding:
    """A resolver whose answer for a name changes after the first lookup (DNS rebinding)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return [self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]]


@pytest.mark.parametrize("later", ["127.0.0.1", "10.1.2.3", "169.254.169.254"])
async def test_a_name_that_resolves_to_a_private_address_at_attempt_time_is_not_called(
        receiver: Receiver, later: str) -> None:
    """Checked at creation (public), rebound to a private address before the attempt: refused, nothing sent."""
    resolver = Rebinding("93.184.216.34", later)
    guard = Guard(allow_private=False, resolver=resolver)
    target = await guard.check(f"http://rebind.example:{receiver.port}/hook")
    sender = Sender(guard, timeout=1.0)
    try:
        body = b'{"type":"post.created"}'
        msg_id = message_id("b1", "e1", 1)
        timestamp = int(time.time())
        outcome = await sender.post(target, {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                                             "webhook-signature": sign(new_secret(), msg_id, timestamp, body)}, body)
    finally:
        await sender.close()
    assert outcome.status is None and outcome.error.startswith("refused:") and later in outcome.error
    assert resolver.asked == ["rebind.example", "rebind.example"]
    assert receiver.requests == []


async def test_literal_private_addresses_are_refused_without_a_lookup() -> None:
    resolver = Rebinding("93.184.216.34")
    guard = Guard(allow_private=False, resolver=resolver)
    for url in ("http://10.9.8.7/", "https://169.254.169.254/", "http://[::1]/", "http://0.0.0.0:80/"):
        with pytest.raises(Refused, match="not a public address"):
            guard.parse(url)
    assert resolver.asked == []


async def test_a_redirect_to_loopback_is_not_followed(start_server: ServerFactory, receiver: Receiver) -> None:
    """The receiver answers 307 to another loopback service: the attempt fails and the other gets nothing."""
    other = Receiver()
    await other.start()
    try:
        server = await start_server(**WEBHOOK_SETTINGS)
        await server.create_blog("b1")
        endpoint = await register(server.http, receiver.url, ["b1"])
        receiver.location = other.url
        receiver.set_mode("redirect")
        assert (await server.publish("b1")).status_code == 201
        found: list[dict[str, Any]] = await eventually(lambda: deliveries(server.http, endpoint["id"]),
                                                       lambda items: len(items) >= 3)
        assert all(item["status"] == 307 and "redirects are not followed" in item["error"] for item in found)
        assert other.requests == []
    finally:
        await other.stop()
