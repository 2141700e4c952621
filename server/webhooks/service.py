"""The webhook service behind the API: register, list, delete endpoints and read their attempts."""

from __future__ import annotations

import secrets
import time

from server.engine import BlogNotFound, Engine
from server.engine.outbox import ALL, Attempt, Endpoint, Outbox
from server.webhooks.dispatcher import Dispatcher
from server.webhooks.guard import Guard
from server.webhooks.model import WebhookCreate
from server.webhooks.signing import new_secret
from server.webhooks.worker import every_blog


class TooManyEndpoints(Exception):
    """LIVEPUSH_WEBHOOK_MAX_ENDPOINTS endpoints exist already."""


class Webhooks:
    """Endpoints over the outbox; the dispatcher delivers them."""

    def __init__(self, engine: Engine, outbox: Outbox, guard: Guard, dispatcher: Dispatcher,
                 max_endpoints: int) -> None:
        self._engine = engine
        self._outbox = outbox
        self._guard = guard
        self._dispatcher = dispatcher
        self._max = max_endpoints

    async def create(self, data: WebhookCreate) -> Endpoint:
        """Check the URL's addresses (Refused), store the endpoint, and start delivering events from now on.

        A blog that exists now is delivered from its current seq; a blog created later (or named
        before it exists) from its first event.
        """
        await self._guard.check(data.url)
        endpoint = Endpoint(id="wh" + secrets.token_hex(8), url=data.url, blogs=tuple(data.blogs),
                            events=tuple(data.events), secret=new_secret(), created_at=time.time(),
                            description=data.description)
        if not await self._outbox.add(endpoint, await self._starting_cursors(endpoint), self._max):
            raise TooManyEndpoints(self._max)
        self._dispatcher.kick()
        return endpoint

    async def _starting_cursors(self, endpoint: Endpoint) -> dict[str, int]:
        if endpoint.blogs == (ALL,):
            return {blog.id: blog.seq for blog in await every_blog(self._engine)}
        cursors = {}
        for blog_id in endpoint.blogs:
            try:
                cursors[blog_id] = (await self._engine.get_blog(blog_id)).seq
            except BlogNotFound:
                continue
        return cursors

    def resync(self) -> None:
        """The engine's fan-out was interrupted: every lane reads its blog again."""
        self._dispatcher.resync()

    async def close(self) -> None:
        await self._outbox.close()

    async def all(self) -> list[Endpoint]:
        return sorted(await self._outbox.all(), key=lambda endpoint: endpoint.created_at)

    async def get(self, endpoint_id: str) -> Endpoint | None:
        return await self._outbox.get(endpoint_id)

    async def delete(self, endpoint_id: str) -> bool:
        return await self._outbox.remove(endpoint_id)

    async def deliveries(self, endpoint_id: str, limit: int) -> list[Attempt]:
        return await self._outbox.attempts(endpoint_id, limit)
