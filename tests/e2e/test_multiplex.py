"""`GET /ws`: several blogs on one WebSocket, over a real uvicorn, on both write paths and both engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.http11 import Response
from websockets.protocol import State

from server.streams.multiplex import MAX_MESSAGE_BYTES
from tests.conftest import LiveServer, ServerFactory, WsReader, wait_until
from tests.e2e.test_conflation import BODY, EDITS, StalledReader

BLOGS = [f"m{i}" for i in range(5)]


@pytest.fixture(params=["direct", "asgi"])
async def server(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    """Every test runs on both write paths: direct (pre-framed bytes) and standard ASGI send."""
    return await start_server(direct_write=request.param == "direct", max_blogs_per_stream=6,
                              reader_buffer_bytes=512 * 1024)


class Mux(WsReader):
    """A test's view of one `/ws` connection: send commands, read decoded messages with bounded waits."""

    async def send(self, **message: Any) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def subscribe(self, blog: str, since: int | None = None, epoch: str | None = None) -> None:
        extra = {"since": since, "epoch": epoch} if since is not None else {}
        await self.send(type="subscribe", blog=blog, **extra)



@contextlib.asynccontextmanager
async def mux(server: LiveServer) -> AsyncIterator[Mux]:
    async with connect(f"{server.ws_base}/ws", compression=None, open_timeout=5, max_size=8 << 20,
                       max_queue=None) as connection:
        yield Mux(connection)


def blog_of(message: dict[str, Any]) -> str:
    """Which blog a message is about: a snapshot's `blog` is the blog object, every other message's its id."""
    blog = message["blog"]
    return str(blog["id"] if message["type"] == "snapshot" else blog)


async def snapshots(reader: Mux, count: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        message = await reader.next_event()
        assert message["type"] == "snapshot", message
        found[blog_of(message)] = message
    return found


async def make_blogs(server: LiveServer, ids: list[str] = BLOGS) -> None:
    for blog_id in ids:
        await server.create_blog(blog_id)


async def test_five_blogs_on_one_connection_each_snapshot_then_tagged_events(server: LiveServer) -> None:
    """Each subscribe gets its blog's snapshot (snapshot.blog.id names it); each event carries its blog."""
    await make_blogs(server)
    await server.publish("m2", headline="Before")
    async with mux(server) as reader:
        for blog_id in BLOGS:
            await reader.subscribe(blog_id)
        found = await snapshots(reader, 5)
        assert sorted(found) == BLOGS
        assert found["m2"]["seq"] == 1 and [p["headline"] for p in found["m2"]["posts"]] == ["Before"]
        for blog_id in BLOGS:
            assert (await server.publish(blog_id, headline=f"In {blog_id}")).status_code == 201
        events = [await reader.next_event() for _ in BLOGS]
    assert sorted((e["blog"], e["type"], e["post"]["headline"]) for e in events) == [
        (b, "post.created", f"In {b}") for b in BLOGS]
    assert {e["blog"]: e["seq"] for e in events} == {"m0": 1, "m1": 1, "m2": 2, "m3": 1, "m4": 1}


async def test_each_blog_resumes_with_its_own_since_and_epoch(server: LiveServer) -> None:
    """After a disconnect, each subscribe with since/epoch gets exactly the events it missed, then live ones."""
    await make_blogs(server)
    async with mux(server) as reader:
        for blog_id in BLOGS:
            await reader.subscribe(blog_id)
        found = await snapshots(reader, 5)
        for i, blog_id in enumerate(BLOGS):
            for n in range(i):
                await server.publish(blog_id, headline=f"{blog_id} seen {n}")
        seen = [await reader.next_event() for _ in range(sum(range(5)))]
    last = {b: max([0] + [e["seq"] for e in seen if e["blog"] == b]) for b in BLOGS}
    assert last == {b: i for i, b in enumerate(BLOGS)}
    for i, blog_id in enumerate(BLOGS):  # missed while away: blog i misses i + 1 events
        for n in range(i + 1):
            await server.publish(blog_id, headline=f"{blog_id} missed {n}")
    async with mux(server) as reader:
        for blog_id in BLOGS:
            await reader.subscribe(blog_id, since=last[blog_id], epoch=found[blog_id]["epoch"])
        replayed = [await reader.next_event() for _ in range(sum(range(1, 6)))]
        for blog_id in BLOGS:
            await server.publish(blog_id, headline=f"{blog_id} live")
        live = [await reader.next_event() for _ in BLOGS]
    for i, blog_id in enumerate(BLOGS):
        mine = [e for e in replayed if e["blog"] == blog_id]
        assert [e["seq"] for e in mine] == list(range(i + 1, 2 * i + 2))
        assert [e["post"]["headline"] for e in mine] == [f"{blog_id} missed {n}" for n in range(i + 1)]
    assert sorted((e["blog"], e["seq"]) for e in live) == [(b, 2 * i + 2) for i, b in enumerate(BLOGS)]


async def test_an_unsubscribed_blog_sends_nothing_more(server: LiveServer) -> None:
    """`unsubscribed` answers an unsubscribe; after it no event of that blog comes, the others go on."""
    await make_blogs(server, ["m0", "m1"])
    async with mux(server) as reader:
        await reader.subscribe("m0")
        await reader.subscribe("m1")
        await snapshots(reader, 2)
        await reader.send(type="unsubscribe", blog="m0")
        assert await reader.next_event() == {"type": "unsubscribed", "blog": "m0"}
        await wait_until(lambda: server.services.hub.count("m0") == 0, what="m0's reader detached")
        await server.publish("m0", headline="Unseen")
        await server.publish("m1", headline="Seen")
        event = await reader.next_event()
        assert (event["blog"], event["post"]["headline"]) == ("m1", "Seen")
        await reader.send(type="unsubscribe", blog="never-subscribed")
        assert await reader.next_event() == {"type": "unsubscribed", "blog": "never-subscribed"}
        await server.publish("m1", headline="Still")
        assert (await reader.next_event())["post"]["headline"] == "Still"


async def test_a_bad_or_unknown_blog_gets_an_error_and_the_others_carry_on(server: LiveServer) -> None:
    """A malformed id and a missing blog among good ones: an error each, the connection and others unaffected."""
    await make_blogs(server, ["m0", "m1"])
    async with mux(server) as reader:
        for blog_id in ("m0", "Not A Blog!", "missing", "m1"):
            await reader.subscribe(blog_id)
        messages = [await reader.next_event() for _ in range(4)]
        errors = {m["blog"]: m for m in messages if m["type"] == "error"}
        assert sorted(blog_of(m) for m in messages if m["type"] == "snapshot") == ["m0", "m1"]
        assert errors["Not A Blog!"]["code"] == "invalid_blog" and errors["Not A Blog!"]["field"] == "blog"
        assert errors["missing"]["code"] == "unknown_blog" and errors["missing"]["detail"]
        await server.publish("m0", headline="A")
        await server.publish("m1", headline="B")
        events = [await reader.next_event() for _ in range(2)]
    assert sorted((e["blog"], e["post"]["headline"]) for e in events) == [("m0", "A"), ("m1", "B")]
    await wait_until(lambda: server.services.hub.count() == 0, what="readers detached after the connection")


async def test_more_blogs_than_the_cap_get_an_error_for_the_extra(server: LiveServer) -> None:
    """With LIVEPUSH_MAX_BLOGS_PER_STREAM=6 the seventh subscribe is refused until one is unsubscribed."""
    ids = [f"c{i}" for i in range(7)]
    await make_blogs(server, ids)
    async with mux(server) as reader:
        for blog_id in ids:
            await reader.subscribe(blog_id)
        messages = [await reader.next_event() for _ in ids]
        assert sorted(blog_of(m) for m in messages if m["type"] == "snapshot") == ids[:6]
        assert [m for m in messages if m["type"] == "error"] == [
            {"type": "error", "blog": "c6", "code": "too_many_blogs", "detail": "at most 6 blogs on one connection"}]
        assert server.services.hub.count() == 6
        await reader.send(type="unsubscribe", blog="c0")
        assert (await reader.next_event())["type"] == "unsubscribed"
        await reader.subscribe("c6")
        assert blog_of(await reader.next_event()) == "c6"


async def test_subscribing_again_resumes_in_place(server: LiveServer) -> None:
    """A second subscribe to the same blog replaces the first: with since/epoch it resumes, nothing twice."""
    await make_blogs(server, ["m0"])
    async with mux(server) as reader:
        await reader.subscribe("m0")
        snapshot = await reader.next_event()
        await server.publish("m0", headline="One")
        assert (await reader.next_event())["seq"] == 1
        await reader.subscribe("m0", since=1, epoch=snapshot["epoch"])
        await server.publish("m0", headline="Two")
        event = await reader.next_event()
        assert (event["seq"], event["post"]["headline"]) == (2, "Two")
        await reader.subscribe("m0")
        again = await reader.next_event()
        assert again["type"] == "snapshot" and again["seq"] == 2
        assert server.services.hub.count("m0") == 1


@pytest.mark.parametrize(("message", "code", "field"), [
    (b"not json", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (b'{"type": "publish", "blog": "m0"}', "unknown_type", "type"),
    (b'{"blog": "m0"}', "invalid_field", "type"),
    (b'{"type": "subscribe"}', "invalid_field", "blog"),
    (b'{"type": "subscribe", "blog": 7}', "invalid_field", "blog"),
    (b'{"type": "subscribe", "blog": "m0", "since": "3", "epoch": "e"}', "invalid_field", "since"),
    (b'{"type": "subscribe", "blog": "m0", "since": true, "epoch": "e"}', "invalid_field", "since"),
    (b'{"type": "subscribe", "blog": "m0", "since": 1, "epoch": "no spaces"}', "invalid_field", "epoch"),
])
async def test_a_malformed_message_gets_an_error_and_the_connection_stays(
        server: LiveServer, message: bytes, code: str, field: str | None) -> None:
    """Not JSON, not an object, an unknown type, a missing or mistyped field: an error naming it; nothing closes."""
    await make_blogs(server, ["m0"])
    async with mux(server) as reader:
        await reader.connection.send(message.decode())
        error = await reader.next_event()
        assert (error["type"], error["code"], error.get("field")) == ("error", code, field)
        assert error["detail"]
        await reader.subscribe("m0")
        assert blog_of(await reader.next_event()) == "m0"


@pytest.mark.parametrize(("send", "code"), [
    (lambda c: c.send("x" * (MAX_MESSAGE_BYTES + 1)), 1009),
    (lambda c: c.send(b'{"type": "subscribe", "blog": "m0"}'), 1003),
])
async def test_an_oversized_or_binary_message_closes_with_its_code(server: LiveServer, send: Any, code: int) -> None:
    """Over 4 KiB of text closes with 1009, a binary message with 1003: the contract's frame rules."""
    await make_blogs(server, ["m0"])
    async with mux(server) as reader:
        await reader.subscribe("m0")
        await reader.next_event()
        await send(reader.connection)
        assert (await reader.closed())[0] == code
    await wait_until(lambda: server.services.hub.count() == 0, what="the connection's readers detached")
    await wait_until(lambda: server.services.admission.open == 0, what="its admission place released")


async def test_a_flood_of_messages_closes_with_1008(server: LiveServer) -> None:
    """More messages a minute than the budget: closed with 1008 (policy)."""
    async with mux(server) as reader:
        with contextlib.suppress(Exception):
            for _ in range(200):
                await reader.send(type="unsubscribe", blog="m0")
        assert (await reader.closed())[0] == 1008


async def subscribe_stalled(server: LiveServer, query: str, blogs: list[str]) -> StalledReader:
    """A `/ws` reader that reads only when told to, subscribed to *blogs* (their snapshots read)."""
    stalled = await StalledReader.open(f"{server.ws_base}/ws{query}")
    while stalled._protocol.state is not State.OPEN:  # the 101 first: nothing may be sent before it
        stalled._protocol.receive_data(await asyncio.wait_for(stalled._reader.read(65536), 5))
        assert [e.status_code for e in stalled._protocol.events_received() if isinstance(e, Response)] == [101]
    for blog_id in blogs:
        stalled._protocol.send_text(orjson.dumps({"type": "subscribe", "blog": blog_id}))
    stalled._flush()
    for _ in blogs:
        assert (await stalled.next() or {}).get("type") == "snapshot"
    return stalled


async def edit_many_times(server: LiveServer, blog_id: str) -> int:
    post_id = (await server.publish(blog_id, headline="Edited many times")).json()["post"]["id"]
    last = 0
    for n in range(EDITS):
        edited = await server.http.patch(f"/api/blogs/{blog_id}/posts/{post_id}", headers=server.auth(),
                                         json={"headline": f"Edit {n}", "body": BODY})
        assert edited.status_code == 200, edited.text
        last = edited.json()["seq"]
    return last


async def test_a_lagging_connection_with_conflate_gets_each_blogs_latest_state(server: LiveServer) -> None:
    """`/ws?conflate=1`: a connection that lags gets `conflated` notices naming their blog, stays open."""
    await make_blogs(server, ["m0", "m1"])
    stalled = await subscribe_stalled(server, "?conflate=1", ["m0", "m1"])
    try:
        last = await edit_many_times(server, "m0")  # the reader reads nothing meanwhile
        await server.publish("m1", headline="Other blog")
        received: list[int] = []
        notices: list[int] = []
        other: list[str] = []
        while not received or received[-1] < last or not other:
            message = await stalled.next()
            assert message is not None, "the lagging connection was closed"
            if message["type"] == "conflated":
                assert message["blog"] == "m0"
                notices.extend(message["seqs"])
            elif message["type"] != "ping" and message["blog"] == "m1":
                other.append(message["post"]["headline"])
            elif message["type"] != "ping":
                received.append(message["seq"])
        assert notices, "nothing was conflated: the reader never lagged"
        assert sorted(received + notices) == list(range(1, last + 1))
        assert other == ["Other blog"]
    finally:
        stalled.close()


async def test_a_lagging_connection_without_conflate_is_closed_whole(server: LiveServer) -> None:
    """The connection's blogs share one byte bound: past it, the connection ends and every reader detaches."""
    await make_blogs(server, ["m0", "m1"])
    stalled = await subscribe_stalled(server, "", ["m0", "m1"])
    try:
        await edit_many_times(server, "m0")
        while (message := await stalled.next()) is not None:
            assert message["type"] != "conflated"
        await wait_until(lambda: server.services.hub.count() == 0, what="both blogs' readers detached")
        await wait_until(lambda: server.services.admission.open == 0, what="its admission place released")
    finally:
        stalled.close()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "asgi"])
async def test_a_quiet_connection_is_pinged_once_for_all_its_blogs(start_server: ServerFactory, direct: bool) -> None:
    """Pings come per connection (no `blog`), on both paths, while its subscriptions are quiet."""
    server = await start_server(direct_write=direct, ping_interval=0.2)
    await make_blogs(server, ["m0", "m1", "m2"])
    async with mux(server) as reader:
        for blog_id in ("m0", "m1", "m2"):
            await reader.subscribe(blog_id)
        await snapshots(reader, 3)
        pings: list[dict[str, Any]] = []
        while len(pings) < 3:
            message = orjson.loads(await asyncio.wait_for(reader.connection.recv(), 5))
            assert message["type"] == "ping", message
            pings.append(message)
    assert pings == [{"type": "ping"}] * 3


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "asgi"])
async def test_a_long_resume_on_one_blog_replays_in_chunks_beside_the_others(start_server: ServerFactory,
                                                                              direct: bool) -> None:
    """2 MB missed on one blog (many history reads) while another is live: every event once, then live ones."""
    server = await start_server(direct_write=direct, history_bytes=1 << 30)
    blog = await server.create_blog("m0")
    await server.create_blog("m1")
    body = "<p>" + "x" * 50 * 1024 + "</p>"
    for n in range(40):
        assert (await server.publish("m0", headline=f"Long {n}", body=body)).status_code == 201
    async with mux(server) as reader:
        await reader.subscribe("m1")
        await reader.subscribe("m0", since=0, epoch=blog["epoch"])
        assert blog_of(await reader.next_event()) == "m1"
        replay = [await reader.next_event(timeout=20) for _ in range(40)]
        assert [(e["blog"], e["seq"]) for e in replay] == [("m0", seq) for seq in range(1, 41)]
        await server.publish("m0", headline="Live")
        await server.publish("m1", headline="Live too")
        live = [await reader.next_event() for _ in range(2)]
        assert sorted((e["blog"], e["seq"]) for e in live) == [("m0", 41), ("m1", 1)]
    assert server.services.feeds.history_reads >= 8


async def test_draining_closes_new_connections_subscribes_and_subscribed_connections_with_1012(
        server: LiveServer) -> None:
    """On a restart a `/ws` connection gets 1012 like any stream: when it opens, subscribes, or is subscribed."""
    await make_blogs(server, ["m0", "m1"])
    async with mux(server) as subscribed, mux(server) as idle:
        await subscribed.subscribe("m0")
        await subscribed.subscribe("m1")
        await snapshots(subscribed, 2)
        server.services.drainer.draining = True
        async with mux(server) as late:
            assert await late.closed() == (1012, "server restarting; reconnect")
        await idle.subscribe("m0")
        assert await idle.closed() == (1012, "server restarting; reconnect")
        assert server.services.hub.close_some(10, 1012, "server restarting; reconnect") == 1  # one of its two
        assert (await subscribed.closed())[0] == 1012
    await wait_until(lambda: server.services.hub.count() == 0, what="both of its readers detached")
    await wait_until(lambda: server.services.admission.open == 0, what="every admission place released")
