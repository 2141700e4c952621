"""The WebSocket protocol of a reader whose handshake the fast path answered (server.streams.handshake)."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.protocol import Protocol, Side, State

from server.protocols.direct import _NO_HANDLER, Detached, DirectSocket, DirectWebSocketProtocol


class ReaderProtocol(DirectWebSocketProtocol):
    """An accepted reader's WebSocket, from a fast handshake: frames in through websockets' parser, out direct.

    Not built by uvicorn's constructor, which makes a request parser, a receive queue and a
    writable event that a detached reader never uses (~20 µs and a few KiB per connection):
    it sets what uvicorn's frame, keepalive, close and shutdown code reads, taking the
    connection's facts from the HTTP protocol that parsed the request. What every connection
    starts with is a class attribute: uvicorn's code assigns, never mutates, these.
    """

    handshake_initiated = True
    handshake_complete = close_sent = disconnected = read_paused = False
    close_timer = ping_timer = pong_timer = None
    close_timeout = 10.0
    initial_response = None
    pending_ping_payload = None
    ping_sent_at = last_ping_rtt = 0.0
    curr_msg_data_type = "bytes"
    scope = None  # type: ignore[assignment]
    queue = writable = _NO_HANDLER  # type: ignore[assignment]

    def __init__(self, http: HttpToolsProtocol) -> None:  # no super().__init__(): see the docstring
        config = http.config
        self.config = config
        self.loop = http.loop
        self.logger = http.logger
        self.app_state = http.app_state
        self.connections = http.connections
        self.tasks = http.tasks
        self.default_headers = http.server_state.default_headers
        self.transport = http.transport
        self.server, self.client = http.server, http.client
        self.scheme = "wss" if http.scheme == "https" else "ws"
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.ping_interval, self.ping_timeout = config.ws_ping_interval, config.ws_ping_timeout
        self.frames = []
        self.socket = DirectSocket(self)
        self._held: list[bytes] | None = []
        self.socket.write = self._held.append  # the first message waits for the 101 (`accept`)

    def accept(self, head: bytes, handler: Detached | None) -> None:
        """Take the connection over from *http*'s protocol and write the 101 and what the reader was given, at once."""
        held, self._held = self._held or [], None
        # Past the handshake: websockets' frame state machine alone, not its server side's request parser.
        self.conn = Protocol(  # type: ignore[assignment]
            Side.SERVER, state=State.OPEN, max_size=self.config.ws_max_size, logger=self.logger)
        self.socket.write = self.transport.write
        self.handshake_complete = True
        self.connections.add(self)
        self.transport.set_protocol(self)
        self.transport.write(b"".join([head, *held]))
        if handler is not None:
            self.detached = handler
            self.start_keepalive()

    def accept_and_close(self, head: bytes, code: int, reason: str) -> None:
        """Accept, then close at once with *code*, as the ASGI handler does."""
        self.accept(head, None)
        self.socket.close(code, reason)
