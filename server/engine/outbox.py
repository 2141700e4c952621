"""Webhook storage: endpoints, their cursors into each blog's history, the delivery lease and the attempt log.

The outbox holds no copy of events. Every acknowledged event is already kept, in order, in its
blog's history (the engine's bounded per-blog stream); an endpoint's queue is the history after
its *cursor* for that blog. A cursor only moves forward, after the receiver answered 2xx, and only
while the caller holds the endpoint's *lease* (`advance` is fenced on it), so one process at a time
delivers an endpoint and a process that lost the lease cannot move the cursor of the one that took
it over. Implementations: `outbox_memory.MemoryOutbox` and `outbox_redis.RedisOutbox`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

ALL = "*"
LOG_SIZE = 100  # attempts kept per endpoint


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registered receiver and its state. Times are Unix seconds."""

    id: str
    url: str
    blogs: tuple[str, ...]
    events: tuple[str, ...]
    secret: str
    created_at: float
    description: str = ""
    disabled_reason: str = ""
    disabled_at: float | None = None
    failing_since: float | None = None

    @property
    def enabled(self) -> bool:
        return not self.disabled_reason

    def wants_blog(self, blog_id: str) -> bool:
        return self.blogs == (ALL,) or blog_id in self.blogs

    def wants_event(self, kind: str) -> bool:
        return self.events == (ALL,) or kind in self.events

    def config(self) -> dict[str, Any]:
        """What never changes after creation, as JSON-ready data."""
        return {"id": self.id, "url": self.url, "blogs": list(self.blogs), "events": list(self.events),
                "secret": self.secret, "created_at": self.created_at, "description": self.description}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], disabled_reason: str = "", disabled_at: float | None = None,
                    failing_since: float | None = None) -> Endpoint:
        return cls(id=config["id"], url=config["url"], blogs=tuple(config["blogs"]), events=tuple(config["events"]),
                   secret=config["secret"], created_at=config["created_at"], description=config["description"],
                   disabled_reason=disabled_reason, disabled_at=disabled_at, failing_since=failing_since)

    def with_state(self, **state: Any) -> Endpoint:
        return replace(self, **state)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as the deliveries log shows it. `status` is None when no answer came."""

    webhook_id: str
    blog: str
    seq: int
    event: str
    attempt: int
    status: int | None
    error: str
    at: float
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Outbox(Protocol):
    """Where webhook endpoints and their delivery state live (memory or Redis)."""

    async def add(self, endpoint: Endpoint, cursors: Mapping[str, int], limit: int) -> bool:
        """Store a new endpoint with its starting cursors; False when *limit* endpoints exist already."""
        ...

    async def get(self, endpoint_id: str) -> Endpoint | None: ...

    async def all(self) -> list[Endpoint]: ...

    async def remove(self, endpoint_id: str) -> bool:
        """Delete the endpoint, its cursors, lease and log; False if it did not exist."""
        ...

    async def set_failing(self, endpoint_id: str, since: float | None) -> None:
        """Record since when the endpoint has failed without a success in between (None: it works)."""
        ...

    async def disable(self, endpoint_id: str, reason: str, at: float) -> None:
        """Stop deliveries to the endpoint for good, keeping *reason* for the API."""
        ...

    async def cursors(self, endpoint_id: str) -> dict[str, int]:
        """The last seq delivered (or skipped) per blog."""
        ...

    async def advance(self, endpoint_id: str, owner: str, blog_id: str, seq: int, force: bool = False,
                      attempts: Sequence[Attempt] = ()) -> bool:
        """Move the blog's cursor forward to *seq* (or, with *force*, set it) and append *attempts* to the log,
        if *owner* holds the lease; False if it does not."""
        ...

    async def acquire(self, endpoint_id: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease for *ttl* seconds; False when another owner holds it, or the endpoint
        is gone or disabled."""
        ...

    async def release(self, endpoint_id: str, owner: str) -> None: ...

    async def record(self, endpoint_id: str, attempts: Sequence[Attempt]) -> None:
        """Append to the endpoint's log of attempts (the newest LOG_SIZE are kept)."""
        ...

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        """The newest attempts first."""
        ...

    async def close(self) -> None: ...
