"""The publisher: checks (or creates) the blog, then posts at a fixed rate, each post stamped.

Posts go out on an open-loop schedule (post n at start + n / rate) whether or not earlier ones
have been answered, so a slow server shows up as latency rather than as fewer posts; only past
MAX_IN_FLIGHT unanswered posts does the publisher skip (and count) a slot. Each post is
stamped with its send time (see stamp.py) and carries an Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import orjson
from hdrh.histogram import HdrHistogram

from server.loadtest import stamp
from server.loadtest.config import LoadConfig
from server.loadtest.stats import HIGHEST_US, new_histogram

MAX_IN_FLIGHT = 256
MAX_CONNECTIONS = 32
FILLER = "Live coverage continues as correspondents report from the scene. "


class PublisherError(RuntimeError):
    """The blog cannot be read or created; the message says why and what to do."""


@dataclass(slots=True)
class Post:
    """One post the publisher sent: when, and what the server answered."""

    number: int
    sent_ns: int
    acked_ns: int = 0
    status: int = 0
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class BlogState:
    seq: int
    epoch: str
    created: bool


class Publisher:
    """Publishes stamped posts to one blog at a fixed rate."""

    def __init__(self, config: LoadConfig, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self.posts: list[Post] = []
        self.latency: HdrHistogram = new_histogram()
        self.statuses: Counter[int] = Counter()
        self.skipped = 0
        self.errors: list[str] = []
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        target = config.target
        # A proxy from the environment has no business between the tool and a server on this machine.
        self._client = httpx.AsyncClient(base_url=target.http_base, headers=headers, limits=limits,
                                         timeout=httpx.Timeout(30.0, connect=10.0), trust_env=not target.is_loopback())
        self._blog_path = f"/api/blogs/{quote(config.blog, safe='')}"
        self._padding = (FILLER * (config.post_bytes // len(FILLER) + 1))[:config.post_bytes]

    async def prepare(self) -> BlogState:
        """Read the blog's seq and epoch, creating the blog first when asked to."""
        created = False
        try:
            if self.config.create_blog:
                response = await self._client.post("/api/blogs", json={"id": self.config.blog,
                                                                        "title": f"Load test {self.config.blog}"})
                if response.status_code not in (201, 409):
                    raise PublisherError(f"creating blog {self.config.blog!r}: HTTP {response.status_code} "
                                         f"{response.text[:200]}")
                created = response.status_code == 201
            response = await self._client.get(self._blog_path)
        except httpx.HTTPError as exc:
            raise PublisherError(f"cannot reach {self.config.target.http_base}: {exc!r}") from exc
        if response.status_code == 404:
            hint = " (pass --create-blog with a token to create it)" if not self.config.create_blog else ""
            raise PublisherError(f"blog {self.config.blog!r} does not exist{hint}")
        if response.status_code != 200:
            raise PublisherError(f"reading blog {self.config.blog!r}: HTTP {response.status_code}")
        blog = response.json()
        return BlogState(int(blog.get("seq", 0)), str(blog.get("epoch", "")), created)

    async def run(self, start: float, seconds: float) -> None:
        """Publish from wall time *start* for *seconds* at the configured rate; then await the answers."""
        rate = self.config.publish_rate
        if rate <= 0:
            return
        in_flight: set[asyncio.Task[None]] = set()
        number = 0
        while True:
            due = start + number / rate
            if due >= start + seconds:
                break
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:
                self.skipped += 1
            else:
                task = asyncio.create_task(self._publish(number))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            number += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)

    def acknowledged(self) -> list[Post]:
        """Posts the server accepted (201 with a seq), in seq order."""
        return sorted((p for p in self.posts if p.seq is not None), key=lambda p: p.seq or 0)

    def last_seq(self) -> int | None:
        seqs = [p.seq for p in self.posts if p.seq is not None]
        return max(seqs) if seqs else None

    async def close(self) -> None:
        await self._client.aclose()

    async def _publish(self, number: int) -> None:
        sent_ns = time.time_ns()
        post = Post(number, sent_ns)
        self.posts.append(post)
        body = orjson.dumps({"headline": f"Load test post {number}", "byline": stamp.make(self.run_id, number, sent_ns),
                             "body": f"<p>{self._padding}</p>"})
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"loadtest-{self.run_id}-{number}"}
        try:
            response = await self._client.post(f"{self._blog_path}/posts", content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.statuses[0] += 1
            self._note(f"post {number}: {exc!r}")
            return
        post.acked_ns = time.time_ns()
        post.status = response.status_code
        self.statuses[response.status_code] += 1
        self.latency.record_value(min(max((post.acked_ns - sent_ns) // 1000, 1), HIGHEST_US))
        if response.status_code == 201:
            try:
                post.seq = int(response.json()["seq"])
            except (ValueError, KeyError, TypeError):
                self._note(f"post {number}: 201 without a seq")
        else:
            self._note(f"post {number}: HTTP {response.status_code} {response.text[:120]}")

    def _note(self, error: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(error)
