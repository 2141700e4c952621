"""The protocol's `ping` for detached WebSocket readers, from one timer for all of them.

A browser cannot see WebSocket-level pings, so the widget counts silence in messages: a
reader that has been sent nothing for a while gets `{"type":"ping"}`. Readers on the ASGI path
ping from their own writer loop; detached direct readers (server.streams.websocket) have no
task, so one sweep every half interval pings those that stayed quiet over two sweeps: a ping
follows 1 to 1.5 intervals of silence, under the widget's 45 s limit with the default 25 s.
"""

from __future__ import annotations

import asyncio

from server.background import Background
from server.protocols.direct import DirectReader
from server.wire import PING


class Keepalive(Background):
    """Pings quiet detached readers; `run()` is the one task that does it."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._readers: set[DirectReader] = set()

    def add(self, reader: DirectReader) -> None:
        self._readers.add(reader)

    def discard(self, reader: DirectReader) -> None:
        self._readers.discard(reader)

    def __len__(self) -> int:
        return len(self._readers)

    def sweep(self) -> int:
        """Ping readers quiet since the sweep before last; return how many were pinged."""
        pinged = 0
        for reader in self._readers:
            if not reader.quiet:
                reader.quiet, reader.idle_checks = True, 0
                continue
            reader.idle_checks += 1
            if reader.idle_checks >= 2:
                reader.write_now(PING)
                reader.idle_checks = 0
                pinged += 1
        return pinged

    async def run(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self._interval / 2)
            self.sweep()
