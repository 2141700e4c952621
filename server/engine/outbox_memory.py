"""Webhook storage in this process's memory: the in-process engine's outbox.

One process delivers everything, so the lease is always this process's; state is lost with it,
as the in-process engine's blogs are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from server.engine.outbox import LOG_SIZE, Attempt, Endpoint, Outbox


@dataclass(slots=True)
class _Held:
    endpoint: Endpoint
    cursors: dict[str, int]
    log: deque[Attempt] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))


class MemoryOutbox:
    """The outbox of the in-process engine."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    async def add(self, endpoint: Endpoint, cursors: Mapping[str, int], limit: int) -> bool:
        if len(self._held) >= limit:
            return False
        self._held[endpoint.id] = _Held(endpoint, dict(cursors))
        return True

    async def get(self, endpoint_id: str) -> Endpoint | None:
        held = self._held.get(endpoint_id)
        return held.endpoint if held else None

    async def all(self) -> list[Endpoint]:
        return [held.endpoint for held in self._held.values()]

    async def remove(self, endpoint_id: str) -> bool:
        return self._held.pop(endpoint_id, None) is not None

    async def set_failing(self, endpoint_id: str, since: float | None) -> None:
        held = self._held.get(endpoint_id)
        if held is not None:
            held.endpoint = held.endpoint.with_state(failing_since=since)

    async def disable(self, endpoint_id: str, reason: str, at: float) -> None:
        held = self._held.get(endpoint_id)
        if held is not None:
            held.endpoint = held.endpoint.with_state(disabled_reason=reason, disabled_at=at)

    async def cursors(self, endpoint_id: str) -> dict[str, int]:
        held = self._held.get(endpoint_id)
        return dict(held.cursors) if held else {}

    async def advance(self, endpoint_id: str, owner: str, blog_id: str, seq: int, force: bool = False,
                      attempts: Sequence[Attempt] = ()) -> bool:
        held = self._held.get(endpoint_id)
        if held is None or not held.endpoint.enabled:
            return False
        held.cursors[blog_id] = seq if force else max(seq, held.cursors.get(blog_id, 0))
        held.log.extend(attempts)
        return True

    async def acquire(self, endpoint_id: str, owner: str, ttl: float) -> bool:
        held = self._held.get(endpoint_id)
        return held is not None and held.endpoint.enabled

    async def release(self, endpoint_id: str, owner: str) -> None:
        return None

    async def record(self, endpoint_id: str, attempts: Sequence[Attempt]) -> None:
        held = self._held.get(endpoint_id)
        if held is not None:
            held.log.extend(attempts)

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        held = self._held.get(endpoint_id)
        return list(reversed(held.log))[:limit] if held else []

    async def close(self) -> None:
        return None


_: type[Outbox] = MemoryOutbox
