"""The publisher: checks (or creates) the blog, then writes at a fixed rate, each new post stamped.

Writes go out on an open-loop schedule (write n at start + n / rate) whether or not earlier ones
have been answered, so a slow server shows up as latency rather than as fewer writes; only past
MAX_IN_FLIGHT unanswered writes does the publisher skip (and count) a slot. Each new post is
stamped with its send time (see stamp.py) and carries an Idempotency-Key.

A write is a new post unless `--edit-share` or `--keep-posts` say otherwise: a share of the
slots PATCH one of the run's newest posts (state-only traffic: `post.updated`), and with
`--keep-posts K` a slot that finds more than K of the run's posts alive DELETEs the oldest
(`post.deleted`), so a long run keeps the blog, and the server's memory, bounded. Every
acknowledged write has a seq, and the readers are held to all of them alike.

With several nodes (`--url` repeated), write n goes to node n mod N, so every node takes writes
and the readers, spread over the nodes too, must get each of them exactly once wherever it was
accepted. The blog is read (or created) on the first node.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
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
RECENT = 5  # an edit goes to one of the run's newest posts, like a live blog's corrections
CREATE, EDIT, DELETE = "create", "edit", "delete"
NCHAN_EPOCH = "nchan"


class PublisherError(RuntimeError):
    """The blog cannot be read or created; the message says why and what to do."""


@dataclass(slots=True)
class Post:
    """One write the publisher sent (a new post, an edit or a delete): when, and what the server answered."""

    number: int
    sent_ns: int
    acked_ns: int = 0
    status: int = 0
    seq: int | None = None
    kind: str = CREATE
    node: int = 0


@dataclass(frozen=True, slots=True)
class BlogState:
    seq: int
    epoch: str
    created: bool


class Publisher:
    """Writes to one blog at a fixed rate: stamped new posts, and edits and deletes when configured."""

    def __init__(self, config: LoadConfig, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self.posts: list[Post] = []
        self.latency: HdrHistogram = new_histogram()
        self.statuses: Counter[int] = Counter()
        self.skipped = 0
        self.errors: list[str] = []
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        # Nchan: one connection and one write at a time, so writes reach it in the order the tool numbered them.
        connections = 1 if config.nchan else MAX_CONNECTIONS
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        # A proxy from the environment has no business between the tool and a server on this machine.
        self._clients = [httpx.AsyncClient(base_url=target.http_base, headers=headers, limits=limits,
                                           timeout=httpx.Timeout(30.0, connect=10.0),
                                           trust_env=not target.is_loopback())
                         for target in config.targets]
        self._client = self._clients[0]
        self._blog_path = f"/api/blogs/{quote(config.blog, safe='')}"
        self._nchan_path = f"/pub/{quote(config.blog, safe='')}"
        self._padding = (FILLER * (config.post_bytes // len(FILLER) + 1))[:config.post_bytes]
        self._live: deque[str] = deque()  # ids of this run's posts not deleted, oldest first
        self._rng = random.Random(f"publisher-{config.seed}")  # noqa: S311 (a simulation, not security)
        self._nchan_seq = 0
        self._in_order = asyncio.Lock()

    async def prepare(self) -> BlogState:
        """Read the blog's seq and epoch, creating the blog first when asked to."""
        if self.config.nchan:
            return await self._prepare_nchan()
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

    async def _prepare_nchan(self) -> BlogState:
        """Nchan as a reference: its channel's one buffered message is a snapshot at seq 0, every reader's first."""
        snapshot = {"type": "snapshot", "blog": {"id": self.config.blog}, "posts": [], "has_more": False, "seq": 0,
                    "epoch": NCHAN_EPOCH}
        try:
            response = await self._client.post(self._nchan_path, content=orjson.dumps(snapshot),
                                               headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise PublisherError(f"cannot reach {self.config.target.http_base}: {exc!r}") from exc
        if not response.is_success:
            raise PublisherError(f"Nchan publisher {self._nchan_path}: HTTP {response.status_code}")
        return BlogState(0, NCHAN_EPOCH, False)

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
                kind, post_id = self._next_write()
                task = asyncio.create_task(self._write(number, kind, post_id))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            number += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)

    def acknowledged(self) -> list[Post]:
        """Writes the server accepted (answered with a seq), in seq order."""
        return sorted((p for p in self.posts if p.seq is not None), key=lambda p: p.seq or 0)

    def last_seq(self) -> int | None:
        seqs = [p.seq for p in self.posts if p.seq is not None]
        return max(seqs) if seqs else None

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()

    def _next_write(self) -> tuple[str, str | None]:
        """What slot's write is: delete the oldest post past --keep-posts, else maybe edit a new one, else create."""
        config = self.config
        if config.keep_posts and len(self._live) > config.keep_posts:
            return DELETE, self._live.popleft()  # taken out now, so no later slot edits or deletes it again
        if config.edit_share and self._live and self._rng.random() < config.edit_share:
            newest = [self._live[-i] for i in range(1, min(RECENT, len(self._live)) + 1)]
            return EDIT, self._rng.choice(newest)
        return CREATE, None

    async def _write(self, number: int, kind: str, post_id: str | None) -> None:
        sent_ns = time.time_ns()
        node = number % len(self._clients)
        client = self._clients[node]
        post = Post(number, sent_ns, kind=kind, node=node)
        nchan_seq = 0
        self.posts.append(post)
        if self.config.nchan:
            self._nchan_seq += 1
            nchan_seq = self._nchan_seq
            event = {"type": "post.created", "blog": self.config.blog, "seq": nchan_seq,
                     "post": {"id": f"lt-{number}", "headline": f"Load test post {number}",
                              "byline": stamp.make(self.run_id, number, sent_ns), "body": f"<p>{self._padding}</p>"}}
            request = client.build_request("POST", self._nchan_path, content=orjson.dumps(event),
                                                 headers={"Content-Type": "application/json"})
            expected = 0
        elif kind == CREATE:
            body = orjson.dumps({"headline": f"Load test post {number}",
                                 "byline": stamp.make(self.run_id, number, sent_ns),
                                 "body": f"<p>{self._padding}</p>"})
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"loadtest-{self.run_id}-{number}"}
            request = client.build_request("POST", f"{self._blog_path}/posts", content=body, headers=headers)
            expected = 201
        elif kind == EDIT:
            body = orjson.dumps({"body": f"<p>Edited by write {number}. {self._padding}</p>"})
            request = client.build_request("PATCH", f"{self._blog_path}/posts/{quote(post_id or '', safe='')}",
                                                 content=body, headers={"Content-Type": "application/json"})
            expected = 200
        else:
            request = client.build_request("DELETE", f"{self._blog_path}/posts/{quote(post_id or '', safe='')}")
            expected = 200
        try:
            if self.config.nchan:
                async with self._in_order:  # a FIFO lock: Nchan gets the writes in the order they were numbered
                    response = await client.send(request)
            else:
                response = await client.send(request)
        except httpx.HTTPError as exc:
            self.statuses[0] += 1
            self._note(f"{kind} {number}: {exc!r}")
            return
        post.acked_ns = time.time_ns()
        post.status = response.status_code
        self.statuses[response.status_code] += 1
        self.latency.record_value(min(max((post.acked_ns - sent_ns) // 1000, 1), HIGHEST_US))
        if expected == 0:  # Nchan: any 2xx accepts the message numbered at send time
            if response.is_success:
                post.seq = nchan_seq
            else:
                self._note(f"nchan {number}: HTTP {response.status_code} {response.text[:120]}")
            return
        if response.status_code != expected:
            self._note(f"{kind} {number}: HTTP {response.status_code} {response.text[:120]}")
            return
        try:
            answer = response.json()
            post.seq = int(answer["seq"])
            if kind == CREATE:
                self._live.append(str(answer["post"]["id"]))
        except (ValueError, KeyError, TypeError):
            self._note(f"{kind} {number}: HTTP {response.status_code} without a seq")

    def _note(self, error: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(error)
