"""Readers' bounded buffers and the hub's fan-out (no I/O)."""

from __future__ import annotations

from server.hub import CLOSE_TRY_LATER, Hub, Reader
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
    assert reader.close_code == CLOSE_TRY_LATER and reader.take() == []


def test_parked_events_continue_the_first_message_or_close() -> None:
    reader = Reader(limit_bytes=1000)
    for seq in (3, 4, 5):
        reader.offer(frame(seq))
    assert reader.start([frame(4)], after=4)  # parked 3 and 4 are covered
    assert [f.seq for f in reader.take()] == [4, 5]
    gap = Reader(limit_bytes=1000)
    gap.offer(frame(7))
    assert not gap.start([frame(4)], after=4) and gap.close_code == CLOSE_TRY_LATER


def test_broadcast_drops_evicted_readers_and_counts() -> None:
    hub = Hub()
    fast, slow = Reader(1000), Reader(15)
    for reader in (fast, slow):
        reader.start([], after=0)
        hub.add("b1", reader)
    assert hub.broadcast(frame(1)) == 2
    assert hub.broadcast(frame(2)) == 1  # slow is now past its 15 bytes
    assert hub.count("b1") == 1 and hub.evicted == 1 and hub.delivered == 3
    assert hub.broadcast(frame(1, blog="other")) == 0
