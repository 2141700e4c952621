"""Readers' bounded buffers and the hub's fan-out (no I/O)."""

from __future__ import annotations

import asyncio

import orjson

from server.closes import Close
from server.hub import Batch, Hub, Reader
from server.wire import Frame


def frame(seq: int, size: int = 10, blog: str = "b1") -> Frame:
    return Frame(blog, seq, b"x" * size)


def test_a_large_first_message_does_not_count_against_the_buffer() -> None:
    reader = Reader(limit_bytes=1000)
    assert reader.start([frame(5, size=5000)], after=5)  # a big snapshot
    assert reader.offer(frame(6))  # not closed for the snapshot's size
    assert [f.seq for f in reader.take()] == [5, 6]


def test_a_reader_that_falls_behind_is_closed_with_1013() -> None:
    reader = Reader(limit_bytes=100)
    reader.start([], after=0)
    assert all(reader.offer(frame(seq, size=30)) for seq in (1, 2, 3))
    assert not reader.offer(frame(4, size=30))
    assert reader.close_code == Close.TRY_LATER and reader.take() == []


def test_parked_events_continue_the_first_message_or_close() -> None:
    reader = Reader(limit_bytes=1000)
    for seq in (3, 4, 5):
        reader.offer(frame(seq))
    assert reader.start([frame(4)], after=4)  # parked 3 and 4 are covered
    assert [f.seq for f in reader.take()] == [4, 5]
    gap = Reader(limit_bytes=1000)
    gap.offer(frame(7))
    assert not gap.start([frame(4)], after=4) and gap.close_code == Close.TRY_LATER


async def test_broadcast_drops_evicted_readers_and_counts() -> None:
    hub = Hub()
    fast, slow = Reader(1000), Reader(15)
    for reader in (fast, slow):
        reader.start([], after=0)
        hub.add("b1", reader)
    hub.broadcast(frame(1))
    hub.flush()
    hub.broadcast(frame(2))
    hub.flush()  # slow is now past its 15 bytes
    assert hub.count("b1") == 1 and hub.evicted == 1 and hub.delivered == 3
    hub.broadcast(frame(1, blog="other"))
    hub.flush()
    assert hub.delivered == 3


async def test_events_that_arrive_during_a_pass_go_out_together_in_the_next() -> None:
    hub = Hub(slice_size=2)
    readers = [Reader(10_000) for _ in range(5)]
    batches: list[list[int]] = []

    class Recording(Reader):
        def offer_batch(self, batch: Batch) -> bool:
            batches.append([f.seq for f in batch.frames])
            return super().offer_batch(batch)

    watcher = Recording(10_000)
    for reader in [*readers, watcher]:
        reader.start([], after=0)
        hub.add("b1", reader)
    hub.broadcast(frame(1))
    hub.flush()
    hub.broadcast(frame(2))
    hub.broadcast(frame(3))  # both queued before the pass runs
    hub.flush()
    assert batches == [[1], [2, 3]]
    assert all([f.seq for f in r.take()] == [1, 2, 3] for r in readers)
    assert hub.delivered == 6 * 3


async def test_a_pass_writes_a_slice_of_readers_per_loop_iteration() -> None:
    hub = Hub(slice_size=2)
    readers = [Reader(10_000) for _ in range(5)]
    for reader in readers:
        reader.start([], after=0)
        hub.add("b1", reader)
    done = asyncio.Event()
    hub.observe_fanout = lambda seconds: done.set()
    hub.broadcast(frame(1))
    await asyncio.sleep(0)  # one loop iteration: one slice
    assert hub.delivered == 2
    await asyncio.wait_for(done.wait(), 5)
    assert hub.delivered == 5 and all([f.seq for f in r.take()] == [1] for r in readers)


async def test_closing_a_blog_drops_its_unwritten_events() -> None:
    hub = Hub()
    old = Reader(10_000)
    old.start([], after=0)
    hub.add("b1", old)
    hub.broadcast(frame(7))  # of the history being left
    assert hub.close_blog("b1", Close.TRY_LATER, "history reset") == 1
    new = Reader(10_000)
    new.start([], after=0)  # a snapshot of the new history, at seq 0
    hub.add("b1", new)
    hub.flush()
    assert new.take() == [] and hub.delivered == 0


def event(seq: int, kind: str, post_id: str = "p") -> Frame:
    body: dict[str, object] = {"type": kind, "seq": seq}
    if kind == "post.deleted":
        body["post_id"] = post_id
    elif kind.startswith("post."):
        body["post"] = {"id": post_id}
    return Frame("b1", seq, orjson.dumps(body))


def test_a_conflating_reader_keeps_only_the_latest_state_and_says_which_seqs_it_dropped() -> None:
    reader = Reader(10_000, conflate=True)
    reader.start([], after=0)
    for frame in (event(1, "post.created", "a"), event(2, "post.updated", "a"), event(3, "blog.updated"),
                  event(4, "post.updated", "b"), event(5, "post.updated", "a"), event(6, "blog.updated"),
                  event(7, "post.deleted", "b")):
        assert reader.offer(frame)
    notice, *frames = reader.take()
    assert orjson.loads(notice.data) == {"type": "conflated", "blog": "b1", "seqs": [2, 3, 4]}
    assert [f.seq for f in frames] == [1, 5, 6, 7]  # creations and deletions are never dropped
    assert reader.conflations == 3


def test_a_reader_that_did_not_ask_for_conflation_gets_every_event() -> None:
    reader = Reader(10_000)
    reader.start([], after=0)
    for seq in (1, 2, 3):
        reader.offer(event(seq, "post.updated", "a"))
    assert [f.seq for f in reader.take()] == [1, 2, 3]
