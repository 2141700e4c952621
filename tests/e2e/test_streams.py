"""WebSocket and SSE streams over a real uvicorn: snapshot, live events, resume, and refusals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import LiveServer, ServerFactory, wait_until


@pytest.fixture(params=["direct", "asgi"])
async def server(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    """Every stream test runs on both write paths: direct (pre-framed bytes) and standard ASGI send."""
    return await start_server(direct_write=request.param == "direct")


async def test_a_new_reader_starts_from_a_snapshot(server: LiveServer, blog: dict[str, Any]) -> None:
    """The first message is a snapshot of the blog, its newest posts, seq and epoch."""
    first = await server.publish(headline="First")
    assert first.status_code == 201
    async with server.reader() as reader:
        snapshot = await reader.next()
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 1 and snapshot["epoch"] == blog["epoch"]
    assert snapshot["blog"]["id"] == "b1" and snapshot["blog"]["post_count"] == 1
    assert [p["headline"] for p in snapshot["posts"]] == ["First"]
    assert snapshot["has_more"] is False


async def test_a_post_reaches_every_reader_once(server: LiveServer, blog: dict[str, Any]) -> None:
    """A post accepted over HTTP arrives exactly once on each socket watching that blog."""
    async with server.reader() as a, server.reader() as b:
        assert (await a.next())["type"] == "snapshot"
        assert (await b.next())["type"] == "snapshot"
        response = await server.publish(headline="Kick-off")
        assert response.status_code == 201
        for reader in (a, b):
            event = await reader.next_event()
            assert (event["type"], event["seq"], event["post"]["headline"]) == ("post.created", 1, "Kick-off")
            assert event["post_count"] == 1 and event["blog"] == "b1"
            assert event["updated_at"] == response.json()["post"]["published_at"]


async def test_every_kind_of_change_is_an_event(server: LiveServer, blog: dict[str, Any]) -> None:
    """Create, edit, pin, delete and blog changes each become one event with the next seq."""
    async with server.reader() as reader:
        await reader.next()
        post = (await server.publish(headline="One")).json()["post"]
        url = f"/api/blogs/b1/posts/{post['id']}"
        await server.http.patch(url, json={"headline": "One (updated)"}, headers=server.auth())
        await server.http.patch(url, json={"pinned": True}, headers=server.auth())
        await server.http.delete(url, headers=server.auth())
        await server.http.patch("/api/blogs/b1", json={"status": "ended"}, headers=server.auth())
        events = await reader.events(5)
    assert [e["type"] for e in events] == ["post.created", "post.updated", "post.updated", "post.deleted",
                                           "blog.updated"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["post"]["version"] == 2 and events[2]["post"]["pinned"] is True
    assert events[3]["post_id"] == post["id"] and events[3]["post_count"] == 0
    assert events[4]["blog"]["status"] == "ended" and events[4]["blog"]["seq"] == 5


async def test_fifty_concurrent_publishes_reach_ten_readers_in_order(server: LiveServer,
                                                                    blog: dict[str, Any]) -> None:
    """50 publishes racing each other are seen by 10 readers as seq 1..50, exactly once, in one order."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(server.reader()) for _ in range(10)]
        for reader in opened:
            assert (await reader.next())["type"] == "snapshot"
        responses = await asyncio.gather(*(server.publish(headline=f"Post {i}") for i in range(50)))
        assert all(r.status_code == 201 for r in responses)
        assert sorted(r.json()["seq"] for r in responses) == list(range(1, 51))
        orders = []
        for reader in opened:
            events = await reader.events(50)
            assert [e["seq"] for e in events] == list(range(1, 51))
            orders.append([e["post"]["id"] for e in events])
        assert all(order == orders[0] for order in orders)
        by_seq = {r.json()["seq"]: r.json()["post"]["id"] for r in responses}
        assert orders[0] == [by_seq[seq] for seq in range(1, 51)]


async def test_a_reader_resumes_with_exactly_what_it_missed(server: LiveServer, blog: dict[str, Any]) -> None:
    """Reconnecting with since+epoch replays the missed events in order, then continues live."""
    async with server.reader() as reader:
        snapshot = await reader.next()
        await server.publish(headline="Seen")
        seen = await reader.next_event()
    for i in range(3):
        await server.publish(headline=f"Missed {i}")
    async with server.reader(since=seen["seq"], epoch=snapshot["epoch"]) as reader:
        replay = await reader.events(3)
        assert [e["seq"] for e in replay] == [2, 3, 4]
        assert [e["post"]["headline"] for e in replay] == ["Missed 0", "Missed 1", "Missed 2"]
        await server.publish(headline="Live again")
        live = await reader.next_event()
        assert live["seq"] == 5
        with pytest.raises(TimeoutError):
            await reader.next_event(timeout=0.3)


async def test_resuming_at_the_top_sends_nothing_until_the_next_event(server: LiveServer,
                                                                      blog: dict[str, Any]) -> None:
    await server.publish(headline="One")
    async with server.reader(since=1, epoch=blog["epoch"]) as reader:
        await server.publish(headline="Two")
        event = await reader.next_event()
        assert (event["type"], event["seq"]) == ("post.created", 2)


@pytest.mark.parametrize("position", [{"epoch": "deadbeef", "since": 1}, {"since": 99}])
async def test_a_foreign_epoch_or_unknown_seq_gets_a_snapshot(server: LiveServer, blog: dict[str, Any],
                                                              position: dict[str, Any]) -> None:
    """A position from another history (or beyond the top) is never replayed: the reader starts over."""
    await server.publish(headline="One")
    await server.publish(headline="Two")
    async with server.reader(since=position["since"], epoch=position.get("epoch", blog["epoch"])) as reader:
        first = await reader.next()
    assert first["type"] == "snapshot" and first["seq"] == 2 and len(first["posts"]) == 2


async def test_a_position_older_than_history_gets_a_snapshot(start_server: ServerFactory) -> None:
    server = await start_server(history_size=1000)
    blog = await server.create_blog("b1")
    for i in range(1300):
        assert (await server.publish(headline=f"P{i}")).status_code == 201
    async with server.reader(since=0, epoch=blog["epoch"]) as reader:
        first = await reader.next()
    assert first["type"] == "snapshot" and first["seq"] == 1300 and first["has_more"] is True
    assert len(first["posts"]) == 20
    async with server.reader(since=300, epoch=blog["epoch"]) as reader:
        first = await reader.next()
    assert first["type"] == "post.created" and first["seq"] == 301


async def test_snapshot_lists_pinned_first_then_newest(server: LiveServer, blog: dict[str, Any]) -> None:
    for i, when in enumerate(["2024-01-01T10:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T11:00:00Z"]):
        await server.publish(headline=f"P{i}", published_at=when, pinned=(i == 0))
    async with server.reader() as reader:
        snapshot = await reader.next()
    assert [p["headline"] for p in snapshot["posts"]] == ["P0", "P1", "P2"]


async def test_unknown_blog_is_closed_with_4404(server: LiveServer) -> None:
    async with server.reader("no-such-blog") as reader:
        assert await reader.closed() == (4404, "unknown blog")


async def test_a_foreign_origin_is_refused_with_1008(server: LiveServer, blog: dict[str, Any]) -> None:
    async with server.reader(origin="https://evil.example") as reader:
        code, reason = await reader.closed()
    assert (code, reason) == (1008, "origin not allowed")


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:9999", None])
async def test_local_origins_and_non_browsers_are_allowed_by_default(server: LiveServer, blog: dict[str, Any],
                                                                     origin: str | None) -> None:
    async with server.reader(origin=origin) as reader:
        assert (await reader.next())["type"] == "snapshot"


async def test_the_allowlist_admits_listed_origins_only(start_server: ServerFactory) -> None:
    server = await start_server(allowed_origins=("https://news.example",))
    await server.create_blog("b1")
    async with server.reader(origin="https://news.example") as reader:
        assert (await reader.next())["type"] == "snapshot"
    async with server.reader(origin="http://localhost:3000") as reader:
        assert (await reader.closed())[0] == 1008
    async with server.reader(origin=server.base) as reader:  # the server's own pages always may
        assert (await reader.next())["type"] == "snapshot"


async def test_a_quiet_stream_gets_pings(start_server: ServerFactory) -> None:
    server = await start_server(ping_interval=0.2)
    await server.create_blog("b1")
    async with server.reader() as reader:
        assert (await reader.next())["type"] == "snapshot"
        assert await reader.next(timeout=2) == {"type": "ping"}


async def test_text_from_a_reader_is_ignored_and_binary_closes_with_1003(server: LiveServer,
                                                                         blog: dict[str, Any]) -> None:
    async with server.reader() as reader:
        await reader.next()
        await reader.connection.send('{"type":"subscribe","blog":"other"}')
        await reader.connection.send("x" * 1000)
        await server.publish(headline="Still here")
        assert (await reader.next_event())["seq"] == 1
        await reader.connection.send(b"\x00\x01")
        assert (await reader.closed())[0] == 1003


async def test_an_oversized_reader_message_closes_with_1009(server: LiveServer, blog: dict[str, Any]) -> None:
    async with server.reader() as reader:
        await reader.next()
        await reader.connection.send("x" * (65 * 1024))
        assert (await reader.closed())[0] == 1009


async def test_a_malformed_since_closes_with_1008(server: LiveServer, blog: dict[str, Any]) -> None:
    url = f"{server.ws_base}/ws/blogs/b1?since=abc"
    async with connect(url) as connection:
        await asyncio.wait_for(connection.wait_closed(), 5)
        assert connection.protocol.close_rcvd is not None and connection.protocol.close_rcvd.code == 1008


async def test_the_reader_count_returns_to_zero(server: LiveServer, blog: dict[str, Any]) -> None:
    """Readers that leave are removed from the hub and free their place (no leak)."""
    for _ in range(5):
        async with server.reader() as reader:
            await reader.next()
    await wait_until(lambda: server.services.hub.count() == 0 and server.services.admission.open == 0,
                     what="readers gone")
    metrics = await _metric(server, 'livepush_readers{blog="b1"}')
    assert metrics in (None, 0.0)


async def test_text_that_is_not_utf8_closes_with_1007(server: LiveServer, blog: dict[str, Any]) -> None:
    async with server.reader() as reader:
        await reader.next()
        await reader.connection.send(b"\xff\xfe not utf-8", text=True)
        assert (await reader.closed())[0] == 1007


async def test_an_attached_direct_reader_holds_no_task(start_server: ServerFactory) -> None:
    """On the direct path a reader's ASGI handler returns once it is attached: idle readers cost no task,
    and they still get events, pings and a clean exit."""
    server = await start_server(direct_write=True, ping_interval=0.2)
    await server.create_blog("b1")

    def handlers() -> int:
        return sum(1 for task in asyncio.all_tasks() if "run_asgi" in repr(task.get_coro()))

    async with contextlib.AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(server.reader()) for _ in range(20)]
        for reader in readers:
            assert (await reader.next())["type"] == "snapshot"
        await wait_until(lambda: handlers() == 0, what="stream handlers to return")
        await server.publish(headline="To every detached reader")
        for reader in readers:
            assert (await reader.next_event())["seq"] == 1
        assert await readers[0].next(timeout=2) == {"type": "ping"}
        assert server.services.hub.count("b1") == 20
    await wait_until(lambda: server.services.hub.count() == 0 and server.services.admission.open == 0,
                     what="readers gone")


async def _metric(server: LiveServer, name: str) -> float | None:
    text = (await server.http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


# SSE


async def _sse_messages(server: LiveServer, path: str, count: int, headers: dict[str, str] | None = None,
                        on_open: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
    """Read *count* `data:` messages (with their `id:`) from an SSE stream."""
    found: list[tuple[str | None, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as client, \
            client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: str | None = None
        opened = False
        async for line in response.aiter_lines():
            if not opened and on_open is not None:
                opened = True
                await on_open()
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                found.append((event_id, orjson.loads(line[6:])))
                event_id = None
                if len(found) == count:
                    break
    return found


async def test_sse_sends_a_snapshot_then_events_with_ids(server: LiveServer, blog: dict[str, Any]) -> None:
    async def publish() -> None:
        await server.publish(headline="Over SSE")

    messages = await asyncio.wait_for(_sse_messages(server, "/sse/blogs/b1", 2, on_open=publish), 10)
    (snap_id, snapshot), (event_id, event) = messages
    epoch = snapshot["epoch"]
    assert snapshot["type"] == "snapshot" and snap_id == f"{epoch}:0"  # resumable even from seq 0
    assert event["type"] == "post.created" and event_id == f"{epoch}:1" and event["seq"] == 1


async def test_sse_resumes_from_an_epoch_and_seq_last_event_id(server: LiveServer, blog: dict[str, Any]) -> None:
    for i in range(4):
        await server.publish(headline=f"P{i}")
    epoch = (await server.blog())["epoch"]
    messages = await asyncio.wait_for(
        _sse_messages(server, "/sse/blogs/b1", 2, headers={"Last-Event-ID": f"{epoch}:2"}), 10)
    assert [(i, m["seq"]) for i, m in messages] == [(f"{epoch}:3", 3), (f"{epoch}:4", 4)]


async def test_sse_resumes_from_a_bare_seq_last_event_id_as_in_v1(server: LiveServer, blog: dict[str, Any]) -> None:
    for i in range(4):
        await server.publish(headline=f"P{i}")
    messages = await asyncio.wait_for(
        _sse_messages(server, "/sse/blogs/b1", 2, headers={"Last-Event-ID": "2"}), 10)
    assert [m["seq"] for _, m in messages] == [3, 4]


async def test_sse_a_last_event_id_from_another_epoch_gets_a_snapshot(server: LiveServer,
                                                                      blog: dict[str, Any]) -> None:
    """The id wins over `?epoch`, and a history it did not count in is never replayed."""
    for i in range(3):
        await server.publish(headline=f"P{i}")
    epoch = (await server.blog())["epoch"]
    [(_, first)] = await asyncio.wait_for(_sse_messages(
        server, f"/sse/blogs/b1?epoch={epoch}", 1, headers={"Last-Event-ID": "0ther:1"}), 10)
    assert (first["type"], first["seq"], first["epoch"]) == ("snapshot", 3, epoch)


async def test_sse_refuses_unknown_blogs_and_foreign_origins(server: LiveServer, blog: dict[str, Any]) -> None:
    unknown = await server.http.get("/sse/blogs/nope")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    foreign = await server.http.get("/sse/blogs/b1", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["field"] == "Origin"
    bad = await server.http.get("/sse/blogs/b1?since=-1")
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    bad_epoch = await server.http.get("/sse/blogs/b1?since=1&epoch=not-an-epoch!")
    assert bad_epoch.status_code == 422 and bad_epoch.json()["field"] == "epoch"


async def test_stream_caps_refuse_with_a_retry_hint(start_server: ServerFactory) -> None:
    """Past LIVEPUSH_MAX_STREAMS_PER_ADDRESS a new WebSocket is closed 1013 and SSE gets 503 + Retry-After;
    a stream that ends frees its place."""
    server = await start_server(max_streams_per_address=2)
    await server.create_blog("b1")
    async with server.reader() as first, server.reader() as second:
        await first.next()
        await second.next()
        async with server.reader() as third:
            assert await third.closed() == (1013, "too many streams from your address; retry later")
        refused = await server.http.get("/sse/blogs/b1")
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["code"] == "too_many_streams"
    async with server.reader() as again:  # the first two left
        assert (await again.next())["type"] == "snapshot"
    metrics = (await server.http.get("/metrics")).text
    assert "livepush_streams_refused_total 2.0" in metrics


async def test_the_process_cap_refuses_when_full(start_server: ServerFactory) -> None:
    server = await start_server(max_streams=1)
    await server.create_blog("b1")
    async with server.reader() as first:
        await first.next()
        async with server.reader() as second:
            assert await second.closed() == (1013, "this server is full; retry later")


async def test_a_seq_without_its_epoch_gets_a_snapshot(server: LiveServer, blog: dict[str, Any]) -> None:
    """The contract replays only when since AND epoch are given: a bare seq could count in another history."""
    await server.publish(headline="One")
    await server.publish(headline="Two")
    url = f"{server.ws_base}/ws/blogs/b1?since=1"
    async with connect(url, max_queue=None) as connection:
        first = orjson.loads(await asyncio.wait_for(connection.recv(), 5))
    assert first["type"] == "snapshot" and first["seq"] == 2


async def test_a_websocket_leaves_no_reference_cycle_behind(server: LiveServer, blog: dict[str, Any]) -> None:
    """Connections are freed by reference counting, not left to the (rarely run) full GC."""
    from server.protocols.direct import DirectWebSocketProtocol
    from server.protocols.http import LimitedHttpProtocol

    def alive() -> int:
        kinds = (LimitedHttpProtocol, DirectWebSocketProtocol)
        return sum(1 for o in gc.get_objects() if type(o) in kinds)

    gc.collect()
    gc.disable()
    try:
        before = alive()
        for _ in range(10):
            async with server.reader() as reader:
                await reader.next()
        await wait_until(lambda: server.services.hub.count() == 0, what="readers gone")
        assert alive() - before <= 2  # at most the last one's two protocols, still unwinding
    finally:
        gc.enable()


async def test_a_saturated_process_refuses_new_streams_with_a_retry_hint(start_server: ServerFactory) -> None:
    """With LIVEPUSH_MAX_LOOP_LAG set, a process whose event loop runs late refuses new readers (1013 / 503)
    until it catches up; readers already attached stay."""
    server = await start_server(max_loop_lag=0.2)
    await server.create_blog("b1")
    async with server.reader() as attached:
        assert (await attached.next())["type"] == "snapshot"
        time.sleep(0.6)  # noqa: ASYNC251  # the point: this blocks the server's loop (it runs in this one)
        async with server.reader() as refused:
            assert await refused.closed() == (1013, "this server is busy; retry later")
        busy = await server.http.get("/sse/blogs/b1")
        assert busy.status_code == 503 and busy.headers["retry-after"]
        assert await _metric(server, "livepush_loop_lag_seconds") is not None
        await wait_until(lambda: server.services.admission.lag < 0.2, what="the loop to recover")
        async with server.reader() as later:
            assert (await later.next())["type"] == "snapshot"
        await server.publish(headline="still here")
        assert (await attached.next_event())["seq"] == 1

