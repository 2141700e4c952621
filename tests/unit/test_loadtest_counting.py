"""The load-test tool's counting readers: whole text frames counted by their headers, whatever the reads' boundaries.

A counting connection hands the Sans-I/O parser back anything that is not a final text frame,
so a server's ping is still answered and a close still closes; the application's keepalive
(`{"type":"ping"}`) is not a delivery.
"""

from __future__ import annotations

import random

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from server.loadtest.transport import Payload
from server.loadtest.transport_ws import WsConnection, batch_bytes


class Counter:
    """A Listener that only keeps what it heard."""

    def __init__(self) -> None:
        self.frames = 0
        self.messages: list[bytes] = []
        self.closed: list[int | None] = []

    def on_open(self) -> None:
        pass

    def on_message(self, data: Payload, now_ns: int) -> None:
        self.messages.append(bytes(data))

    def on_frames(self, count: int) -> None:
        self.frames += count

    def on_failed(self, status: int, detail: str) -> None:
        raise AssertionError(detail)

    def on_closed(self, code: int | None, reason: str) -> None:
        self.closed.append(code)


class FakeTransport:
    """Collects what the connection writes (pongs, closes)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> None:
        return None


def counting_connection(listener: Counter) -> WsConnection:
    """A counting connection after a real handshake (answered by websockets' server side) and its first message."""
    connection = WsConnection(listener, "ws://127.0.0.1:1/ws/blogs/b1", 10.0, counting=True)
    connection._transport = FakeTransport()  # type: ignore[assignment]
    client = connection._protocol
    client.send_request(client.connect())
    server = ServerProtocol()
    server.receive_data(b"".join(client.data_to_send()))
    request = server.events_received()[0]
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    connection.data_received(b"".join(server.data_to_send()) + text(20))  # the snapshot, parsed
    assert listener.messages == [b"x" * 20] and connection._fast
    listener.messages.clear()
    return connection


def text(size: int) -> bytes:
    return Frame(Opcode.TEXT, b"x" * size).serialize(mask=False)


def test_frames_are_counted_across_any_read_boundaries() -> None:
    """Small, 16-bit and 64-bit length frames, fed in random slices (1 byte to 3 frames): every one counted once."""
    sizes = [10, 125, 126, 600, 65535, 65536, 70000, 3, 0] * 3
    stream = b"".join(text(size) for size in sizes)
    rng = random.Random(5)
    for _ in range(20):
        listener = Counter()
        connection = counting_connection(listener)
        position = 0
        while position < len(stream):
            step = rng.choice([1, 2, 3, 7, 130, 700, 70000, 200000])
            connection.data_received(stream[position:position + step])
            position += step
        assert listener.frames == len(sizes)
        assert connection._skip == 0 and connection._head == b""


def test_the_keepalive_is_not_a_delivery_and_a_ping_is_answered() -> None:
    """`{"type":"ping"}` is skipped; a WebSocket ping goes to the parser (which queues a pong); counting resumes."""
    listener = Counter()
    connection = counting_connection(listener)
    keepalive = Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=False)
    ping = Frame(Opcode.PING, b"hi").serialize(mask=False)
    connection.data_received(text(50) + keepalive + ping + text(60))
    assert listener.frames == 1  # the one before the ping; the parser took the rest
    assert listener.messages == [b"x" * 60]  # parsed after the ping, as any message would be
    transport = connection._transport
    assert isinstance(transport, FakeTransport)
    assert any(chunk[0] == 0x8A for chunk in transport.written)  # the pong (masked, from a client)
    connection.data_received(text(70) + text(80))
    assert listener.frames == 3  # back to counting once the parser was at a frame boundary


def test_batches_fill_in_a_fraction_of_a_second_and_small_ones_are_skipped() -> None:
    assert batch_bytes(20, 300) == 3000  # 20 messages/s of ~600 bytes: five per read
    assert batch_bytes(64, 300) == 4096  # capped
    assert batch_bytes(4, 300) == 0  # one message per quarter second: not worth batching
