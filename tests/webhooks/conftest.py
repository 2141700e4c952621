"""A real webhook receiver on loopback (uvicorn in the test's loop) that verifies every delivery.

Each request is checked with the `standardwebhooks` package (the specification's reference
verifier). The receiver's `mode` says how it answers: `ok` (204), `fail` (500), `slow` (answers
long after the sender's timeout), `redirect` (307 to `location`). `stop()` closes its port and
`start()` opens the same port again, for a receiver that is down for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import ADMIN_TOKEN, wait_until
from tests.redis_servers import free_port

T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Received:
    """One request; `accepted` once the receiver has answered it with a 2xx."""

    webhook_id: str
    event: dict[str, Any]
    accepted: bool
    headers: dict[str, str]


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    delay: float = 0.0  # seconds before each answer in `ok` mode (a receiver that keeps a queue building)
    location: str = ""
    secret: str | None = None
    requests: list[Received] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[Received]:
        return [item for item in self.requests if item.accepted]

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender gave up (its timeout) before this request was read: not a delivery
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        mode = self.mode
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                self.unverified.append(f"{headers.get('webhook-id')}: {exc}")
        received = Received(headers.get("webhook-id", ""), orjson.loads(body), False, headers)
        self.requests.append(received)
        if mode == "ok" and self.delay:
            await asyncio.sleep(self.delay)
        if mode == "slow":  # hold the answer until the test moves on (long after the sender gave up)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._released.wait()
        status, extra = {"ok": (204, []), "fail": (500, []),
                         "redirect": (307, [(b"location", self.location.encode())])}.get(mode, (500, []))
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": b""})
        received.accepted = status == 204  # answered 2xx: the sender may consider it delivered

    def set_mode(self, mode: str) -> None:
        if mode != "slow":
            self._released.set()
        else:
            self._released.clear()
        self.mode = mode

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off",
                                interface="asgi3")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server is not None and self._server.started, 10, "the receiver")

    async def stop(self) -> None:
        self._released.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
        self._server = self._task = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


WEBHOOK_SETTINGS = {"webhook_allow_private": True, "webhook_timeout": 0.5, "webhook_backoff_base": 0.01,
                    "webhook_backoff_max": 0.1, "webhook_poll_interval": 0.1, "webhook_lease": 1.0}


async def register(client: httpx.AsyncClient, url: str, blogs: list[str],
                   events: list[str] | None = None) -> dict[str, Any]:
    """POST /api/webhooks on the server *client* points at; the 201 body."""
    response = await client.post("/api/webhooks", json={"url": url, "blogs": blogs, "events": events or ["*"]},
                                 headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/webhooks/{endpoint_id}/deliveries?limit=100", headers=AUTH)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


async def shown(client: httpx.AsyncClient, endpoint_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/webhooks/{endpoint_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def eventually(read: Callable[[], Awaitable[T]], predicate: Callable[[T], bool], timeout: float = 30) -> T:
    """Read the API until *predicate* holds (it has no push for this state); fail after *timeout*."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            found = await read()
            if predicate(found):
                return found
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")
