"""The engine contract, run against every engine: sequencing, history, idempotency, versions.

These talk to the engine directly (no HTTP), so they pin down what the API and streams rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from server.app import make_engine
from server.engine import (
    BlogEnded,
    BlogExists,
    BlogNotFound,
    Engine,
    Idempotency,
    IdempotencyMismatch,
    PostIdTaken,
    PostNotFound,
    QuotaExceeded,
    StaleVersion,
)
from server.model import Blog, Post
from server.paging import BadCursor
from server.wire import Frame
from tests.conftest import make_settings, redis_for

T0 = datetime(2024, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("engine_kind", ["memory", "redis", "redis-sentinel", "redis-cluster"], indirect=True)


class Sink:
    """Collects delivered events; `wait_for(n)` awaits the n-th without sleeping blindly."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.resyncs = 0
        self._changed = asyncio.Event()

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)
        self._changed.set()

    def resync(self, blogs: Collection[str] | None = None) -> None:
        self.resyncs += 1

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Frame]:
        async with asyncio.timeout(timeout):
            while len(self.frames) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.frames


@pytest.fixture
async def engine(engine_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Engine, Sink]]:
    redis = redis_for(engine_kind, request)
    engine = make_engine(make_settings(engine_kind, redis, history_size=1000))
    sink = Sink()
    await engine.start(sink.deliver, sink.resync)
    try:
        yield engine, sink
    finally:
        await engine.close()


def blog(blog_id: str = "b1") -> Blog:
    return Blog(id=blog_id, title="Blog", created_at=T0, updated_at=T0)


def post(post_id: str, minutes: int = 0, **fields: object) -> Post:
    at = T0 + timedelta(minutes=minutes)
    return Post.model_validate({"id": post_id, "headline": post_id, "published_at": at, "updated_at": at, **fields})


async def test_a_new_blog_starts_at_seq_zero_with_an_epoch(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    created = await eng.create_blog(blog())
    assert (created.seq, created.post_count) == (0, 0) and created.epoch
    assert await eng.get_blog("b1") == created
    assert [b.id for b in (await eng.list_blogs(10)).blogs] == ["b1"]
    with pytest.raises(BlogExists):
        await eng.create_blog(blog())
    with pytest.raises(BlogNotFound):
        await eng.get_blog("b2")


async def test_every_write_takes_the_next_seq_and_is_delivered(engine: tuple[Engine, Sink]) -> None:
    eng, sink = engine
    await eng.create_blog(blog())
    await eng.watch("b1")
    assert (await eng.create_post("b1", post("p1"), None)).seq == 1
    assert (await eng.update_post("b1", "p1", {"headline": "edited"}, None, T0)).seq == 2
    assert (await eng.delete_post("b1", "p1", None, T0)).seq == 3
    assert (await eng.update_blog("b1", {"status": "ended"}, T0)).seq == 4
    frames = await sink.wait_for(4)
    events = [orjson.loads(f.data) for f in frames]
    assert [(e["type"], e["seq"]) for e in events] == [("post.created", 1), ("post.updated", 2),
                                                      ("post.deleted", 3), ("blog.updated", 4)]
    assert [e["post_count"] for e in events] == [1, 1, 0, 0]
    assert events[1]["post"]["version"] == 2 and events[2]["post_id"] == "p1"
    assert events[3]["blog"]["status"] == "ended" and events[3]["blog"]["seq"] == 4
    epoch = (await eng.get_blog("b1")).epoch
    assert all(f.blog == "b1" and f.epoch == epoch for f in frames)


async def test_concurrent_writes_get_distinct_gapless_seqs(engine: tuple[Engine, Sink]) -> None:
    eng, sink = engine
    await eng.create_blog(blog())
    await eng.watch("b1")
    results = await asyncio.gather(*(eng.create_post("b1", post(f"p{i}", i), None) for i in range(40)))
    assert sorted(r.seq for r in results) == list(range(1, 41))
    frames = await sink.wait_for(40)
    assert [f.seq for f in frames] == list(range(1, 41))
    assert (await eng.get_blog("b1")).post_count == 40


async def test_history_replays_and_is_bounded(engine: tuple[Engine, Sink]) -> None:
    """At least the last 1000 events replay exactly; older positions are refused, never partly replayed."""
    eng, _ = engine
    created = await eng.create_blog(blog())
    for i in range(1300):
        await eng.create_post("b1", post(f"p{i}", i), None)
    replay = await eng.events_since("b1", 1295)
    assert replay is not None and [f.seq for f in replay.frames] == [1296, 1297, 1298, 1299, 1300]
    assert replay.top == 1300 and not replay.more
    assert orjson.loads(replay.frames[0].data)["post"]["id"] == "p1295"
    nothing = await eng.events_since("b1", 1300)
    assert nothing is not None and nothing.frames == [] and not nothing.more
    kept = await eng.events_since("b1", 300, limit=1000, max_bytes=1 << 30)
    assert kept is not None and [f.seq for f in kept.frames] == list(range(301, 1301))
    assert await eng.events_since("b1", 0) is None
    assert await eng.events_since("b1", 2000) is None
    assert await eng.events_since("b1", 1295, epoch="another") is None
    again = await eng.events_since("b1", 1295, epoch=created.epoch)
    assert again is not None and [f.data for f in again.frames] == [f.data for f in replay.frames]


async def test_history_is_read_in_bounded_chunks_that_join_without_a_gap(engine: tuple[Engine, Sink]) -> None:
    """A read returns at most `limit` events and about `max_bytes` (at least one event however large); reading on
    from the last one while `more` walks the history once, in order."""
    eng, _ = engine
    await eng.create_blog(blog())
    for i in range(40):
        await eng.create_post("b1", post(f"p{i}", i, body="<p>" + "x" * (100 * i) + "</p>"), None)
    first = await eng.events_since("b1", 0, limit=7)
    assert first is not None and [f.seq for f in first.frames] == list(range(1, 8)) and first.more
    assert first.top == 40
    tiny = await eng.events_since("b1", 30, max_bytes=10)
    assert tiny is not None and [f.seq for f in tiny.frames] == [31] and tiny.more
    seen: list[int] = []
    since = 0
    while True:
        chunk = await eng.events_since("b1", since, limit=100, max_bytes=8000)
        assert chunk is not None
        sizes = [len(f.data) for f in chunk.frames]
        assert len(sizes) == 1 or sum(sizes) <= 8000
        seen += [f.seq for f in chunk.frames]
        if not chunk.more:
            break
        since = chunk.frames[-1].seq
    assert seen == list(range(1, 41))


async def test_idempotency_replays_the_first_result(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    await eng.create_blog(blog())
    key = Idempotency("k1", "fingerprint-a", 60)
    first = await eng.create_post("b1", post("p1"), key)
    again = await eng.create_post("b1", post("p2"), key)
    assert (again.value, again.seq, again.replayed) == (first.value, first.seq, True)
    assert (await eng.get_blog("b1")).post_count == 1
    with pytest.raises(IdempotencyMismatch):
        await eng.create_post("b1", post("p3"), Idempotency("k1", "fingerprint-b", 60))


async def test_versions_guard_edits_and_deletes(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    await eng.create_blog(blog())
    await eng.create_post("b1", post("p1"), None)
    edited = await eng.update_post("b1", "p1", {"pinned": True}, 1, T0 + timedelta(hours=1))
    assert edited.value.version == 2 and edited.value.pinned and edited.value.updated_at == T0 + timedelta(hours=1)
    with pytest.raises(StaleVersion) as stale:
        await eng.update_post("b1", "p1", {"pinned": False}, 1, T0)
    assert stale.value.current == 2
    with pytest.raises(StaleVersion):
        await eng.delete_post("b1", "p1", 1, T0)
    assert (await eng.get_blog("b1")).seq == 2
    with pytest.raises(PostNotFound):
        await eng.update_post("b1", "nope", {"pinned": True}, None, T0)


async def test_ended_blogs_and_taken_ids_refuse_posts(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    await eng.create_blog(blog())
    await eng.create_post("b1", post("p1"), None)
    with pytest.raises(PostIdTaken):
        await eng.create_post("b1", post("p1"), None)
    await eng.update_blog("b1", {"status": "ended"}, T0)
    with pytest.raises(BlogEnded):
        await eng.create_post("b1", post("p2"), None)
    assert (await eng.get_blog("b1")).seq == 2


async def test_snapshot_and_pages_agree(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    await eng.create_blog(blog())
    for i in range(25):
        await eng.create_post("b1", post(f"p{i:02d}", i, pinned=i == 5), None)
    snap = await eng.snapshot("b1", 20)
    assert snap.blog.seq == 25 and len(snap.page.posts) == 20 and snap.page.has_more
    assert snap.page.posts[0].id == "p05" and snap.page.posts[1].id == "p24"
    page = await eng.list_posts("b1", 20, "newest", None)
    assert page.posts == snap.page.posts


async def test_import_loads_a_whole_blog_once(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    assert await eng.import_blog(blog(), [post("p1"), post("p2", 1)])
    assert not await eng.import_blog(blog(), [])
    loaded = await eng.get_blog("b1")
    assert (loaded.post_count, loaded.seq, loaded.updated_at) == (2, 0, T0)
    assert (await eng.get_post("b1", "p2")).headline == "p2"


@contextlib.asynccontextmanager
async def limited(engine_kind: str, request: pytest.FixtureRequest, **limits: int) -> AsyncIterator[Engine]:
    """An engine started with settings overrides (quotas, history bounds) on a clean store."""
    redis = redis_for(engine_kind, request)
    eng = make_engine(make_settings(engine_kind, redis, **limits))
    sink = Sink()
    await eng.start(sink.deliver, sink.resync)
    try:
        yield eng
    finally:
        await eng.close()


def event_bytes(frames: list[Frame]) -> int:
    return sum(len(frame.data) for frame in frames)


async def test_history_is_bounded_by_bytes_as_well_as_by_count(engine_kind: str, request: pytest.FixtureRequest) -> None:
    """Edits of a 20 KB post keep at most LIVEPUSH_HISTORY_BYTES of events, the newest ones, and never a partial replay."""
    async with limited(engine_kind, request, history_bytes=64 * 1024) as eng:
        await eng.create_blog(blog())
        await eng.create_post("b1", post("p1", body="<p>" + "x" * 20_000 + "</p>"), None)
        for i in range(30):
            await eng.update_post("b1", "p1", {"headline": f"edit {i}"}, None, T0)
        top = (await eng.get_blog("b1")).seq
        assert top == 31
        oldest_kept = top
        while oldest_kept > 0 and await eng.events_since("b1", oldest_kept - 1) is not None:
            oldest_kept -= 1
        read = await eng.events_since("b1", oldest_kept)
        assert read is not None and not read.more
        kept = read.frames
        assert [f.seq for f in kept] == list(range(oldest_kept + 1, top + 1))
        assert 1 <= len(kept) < 4 and event_bytes(kept) <= 64 * 1024
        assert orjson.loads(kept[-1].data)["post"]["headline"] == "edit 29"
        assert await eng.events_since("b1", 0) is None


async def test_an_event_larger_than_the_byte_budget_is_still_kept_alone(
        engine_kind: str, request: pytest.FixtureRequest) -> None:
    """The newest event always stays, so a reader one event behind can still resume exactly."""
    async with limited(engine_kind, request, history_bytes=64 * 1024) as eng:
        await eng.create_blog(blog())
        await eng.create_post("b1", post("p0"), None)
        await eng.create_post("b1", post("p1", body="<p>" + "y" * 65_000 + "</p>"), None)
        kept = await eng.events_since("b1", 1)
        assert kept is not None and [f.seq for f in kept.frames] == [2]
        assert await eng.events_since("b1", 0) is None


async def test_a_full_blog_refuses_new_posts_and_nothing_else(engine_kind: str, request: pytest.FixtureRequest) -> None:
    """Ten racing publishes into a blog with room for three: three posts, seqs 1-3, seven QuotaExceeded."""
    async with limited(engine_kind, request, max_posts_per_blog=3) as eng:
        await eng.create_blog(blog())
        key = Idempotency("k1", "fp", 60)
        first = await eng.create_post("b1", post("p0"), key)
        results = await asyncio.gather(*(eng.create_post("b1", post(f"p{i}", i), None) for i in range(1, 10)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert len(refused) == 7 and all((r.quota, r.limit) == ("posts_per_blog", 3) for r in refused)
        full = await eng.get_blog("b1")
        assert (full.post_count, full.seq) == (3, 3)
        replay = await eng.create_post("b1", post("other"), key)  # a retry of a post made before it filled up
        assert replay.replayed and replay.value.id == first.value.id
        # Edits and deletes still work; a delete makes room for one more.
        await eng.update_post("b1", "p0", {"headline": "edited"}, None, T0)
        await eng.delete_post("b1", "p0", None, T0)
        assert (await eng.create_post("b1", post("again"), None)).seq == 6
        with pytest.raises(QuotaExceeded):
            await eng.create_post("b1", post("one-more"), None)
        assert (await eng.get_blog("b1")).seq == 6


async def test_the_blog_quota_counts_every_blog(engine_kind: str, request: pytest.FixtureRequest) -> None:
    """Six racing creates with room for three: three blogs; imports (demo data) are not counted against it."""
    async with limited(engine_kind, request, max_blogs=3) as eng:
        results = await asyncio.gather(*(eng.create_blog(blog(f"b{i}")) for i in range(6)), return_exceptions=True)
        assert sum(isinstance(r, Blog) for r in results) == 3
        assert all(isinstance(r, QuotaExceeded) and (r.quota, r.limit) == ("blogs", 3)
                   for r in results if not isinstance(r, Blog))
        created = sorted(r.id for r in results if isinstance(r, Blog))
        with pytest.raises(BlogExists):  # an existing id is still a conflict, not a quota
            await eng.create_blog(blog(created[0]))
        assert await eng.import_blog(blog("demo"), [post("d1")])
        page = await eng.list_blogs(10)
        assert [b.id for b in page.blogs] == sorted([*created, "demo"]) and page.next is None


async def test_blogs_are_listed_in_id_order_one_page_at_a_time(engine: tuple[Engine, Sink]) -> None:
    eng, _ = engine
    ids = [f"blog-{i:02d}" for i in range(7)]
    for blog_id in reversed(ids):
        await eng.create_blog(blog(blog_id))
    seen, after, pages = [], None, 0
    while True:
        page = await eng.list_blogs(3, after)
        seen += [b.id for b in page.blogs]
        pages += 1
        if page.next is None:
            break
        assert page.next == page.blogs[-1].id
        after = page.next
    assert seen == ids and pages == 3
    assert [b.id for b in (await eng.list_blogs(2, "blog-02x")).blogs] == ["blog-03", "blog-04"]
    assert (await eng.list_blogs(5, "zzz")).blogs == []
    one = await eng.list_blogs(7)
    assert len(one.blogs) == 7 and one.next is None
    assert all(b.seq == 0 and b.epoch for b in one.blogs)


async def test_blogs_are_listed_most_recently_updated_first(engine: tuple[Engine, Sink]) -> None:
    """The "updated" order: newest `updated_at` first, ties by id descending, pages joined by cursors."""
    eng, _ = engine
    for i in range(5):
        await eng.create_blog(blog(f"b{i}"))
    await eng.create_post("b1", post("p1", 1), None)  # the post's time becomes the blog's updated_at
    await eng.update_blog("b3", {"title": "Renamed"}, T0 + timedelta(minutes=2))
    pages, after = [], None
    while True:
        page = await eng.list_blogs(2, after, order="updated")
        pages.append([b.id for b in page.blogs])
        if page.next is None:
            break
        after = page.next
    assert pages == [["b3", "b1"], ["b4", "b2"], ["b0"]]
    assert [b.id for b in (await eng.list_blogs(10, order="updated")).blogs] == ["b3", "b1", "b4", "b2", "b0"]
    await eng.delete_post("b1", "p1", None, T0 + timedelta(minutes=3))
    assert [b.id for b in (await eng.list_blogs(2, order="updated")).blogs] == ["b1", "b3"]
    for forged in ("", "abc", "12_", "_b1", "1e3_b1", "12_B1", "1" * 16 + "_b1"):
        with pytest.raises(BadCursor):
            await eng.list_blogs(2, forged, order="updated")
