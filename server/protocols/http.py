"""Limits on reading HTTP requests: the slowloris and huge-header protection uvicorn does not have.

uvicorn's only HTTP timer is keep-alive, and every byte received cancels it, so a client that
opens a connection and sends a request line one byte at a time (or nothing at all) holds a
socket and a file descriptor for ever; and it puts no bound on the size of request headers.
`LimitedHttpProtocol` is uvicorn's httptools protocol plus:

- **a header deadline**: the request line and headers must be complete within
  `LIVEPUSH_HEADER_TIMEOUT` of the connection opening (first request) or of the request's first
  byte (later requests on a kept-alive connection, whose idle time before that byte is uvicorn's
  keep-alive timeout). Late: 408 problem+json if a request had begun, then the connection closes.
- **a header size cap** (`MAX_HEADER_BYTES`, request line plus headers, WebSocket handshakes
  included): past it, 431 problem+json and the connection closes.
- **an unread-body deadline**: when the app answers without reading the whole body (a 401
  before the upload), the rest must arrive within `LIVEPUSH_BODY_TIMEOUT` or the connection closes.
- **a write deadline**: once the response's unsent bytes pass the transport's high-water mark, the
  client must take enough of them to bring it back below low water within `LIVEPUSH_WRITE_TIMEOUT`,
  or the connection is reset (closing would wait for a peer that does not read). A client that asks
  and never reads holds at most one response's buffer, for at most that long.

A request that is not valid HTTP (a CR or an escape inside a header, a bad request line, a
malformed chunked body: an unknown transfer coding, a chunk size overflow, LF-only chunk lines)
gets 400 problem+json naming what the parser found, where uvicorn answers in plain text (or, once
the app had started reading the body, closed the connection without an answer).

A body the app does read has its own deadline in `server.api.body` (408 problem+json). The
timeouts come from the settings of the app this connection serves (its lifespan state), so the
tests' servers and every worker of `livepush serve` use this one class.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.headers import security_headers
from server.pages.fastpath import new_request_id, raw_answer
from server.problems import problem_body
from server.services import Services
from server.settings import Settings

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_WRITE_TIMEOUT = 60.0
MAX_HEADER_BYTES = 64 * 1024  # browsers send a few KiB; nginx refuses past 32 KiB by default
LINGER_SECONDS = 2.0  # after a refusal, how long input is read and dropped so that the answer arrives
PROBLEM_JSON = b"application/problem+json"
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
# Lifespan state the app hands its connections (uvicorn builds protocols with no other way in):
SETTINGS = "livepush.settings"  # the app's Settings: the deadlines below
UPGRADES = "livepush.upgrades"  # Callable[[HttpToolsProtocol], bool]: a WebSocket upgrade fast path


class _HeadersTooLarge(Exception):
    """Raised from the parser callback so that no request cycle starts."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on request headers, and a deadline on
    bodies nobody reads."""

    _deadline: asyncio.TimerHandle | None = None
    _begun = False  # bytes of the current request have been parsed
    _in_headers = True  # the next bytes belong to a request line or headers
    _header_bytes = 0  # received while in headers (the parser buffers an unfinished header)
    _message_complete = True  # the current request has been received whole
    _refused = False  # answered 408/431; reading only to let the client see the answer
    _write_deadline: asyncio.TimerHandle | None = None  # armed while writing is paused
    _direct = False  # the current request was answered from the page cache, without an ASGI cycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = self.app_state.get(SETTINGS)
        if not isinstance(settings, Settings):
            settings = None
        self.header_timeout = settings.header_timeout if settings else DEFAULT_HEADER_TIMEOUT
        self.body_timeout = settings.body_timeout if settings else DEFAULT_BODY_TIMEOUT
        self.write_timeout = settings.write_timeout if settings else DEFAULT_WRITE_TIMEOUT
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_write_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._write_late)

    def resume_writing(self) -> None:
        self._stop_write_deadline()
        super().resume_writing()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the header size cap: what the parser buffers stays within the cap and one read."""
        if self._refused:
            return  # lingering after a refusal: read and drop
        if self._in_headers:
            self._header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._headers_too_large()
            else:
                self._invalid(exc)
            return
        except httptools.HttpParserError as exc:
            self._invalid(exc)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Still in headers after the whole read went to them (a finished request resets the count).
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._headers_too_large()

    def handle_websocket_upgrade(self) -> None:
        take: Any = self.app_state.get(UPGRADES)  # server.streams.handshake: the request parsed once, here
        if take is None or not take(self):
            super().handle_websocket_upgrade()
        # The WebSocket protocol owns the transport now and this object gets no more callbacks. Its
        # parser points back at it: left alone, that cycle outlives the connection until a full GC
        # pass, which the tuned thresholds make rare (it showed as slow memory growth under churn).
        self.parser = None  # type: ignore[assignment]

    def _invalid(self, exc: Exception) -> None:
        """uvicorn answers a request it cannot parse with plain text; this names what was wrong."""
        self.logger.warning("Invalid HTTP request received.")
        self._refuse(400, "malformed_request", f"the request is not valid HTTP/1.1: {exc}")

    def _headers_too_large(self) -> None:
        self._refuse(431, "headers_too_large", f"the request line and headers exceed {MAX_HEADER_BYTES} bytes")

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._message_complete = False
        if self._deadline is None:  # the first request keeps the deadline armed at connection_made
            self._arm(self.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_headers = False
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEADER_BYTES:
            raise _HeadersTooLarge  # it came in one read with the end of headers; no request cycle may start
        if not self._answered_from_cache():
            super().on_headers_complete()

    def _answered_from_cache(self) -> bool:
        """A current cached page is written straight away: no ASGI request, no task (server.pages.fastpath)."""
        svc = self.app_state.get("services")
        busy = self.cycle is not None and not self.cycle.response_complete  # pipelined behind a running request
        # A peer that pipelines requests but does not read: the ASGI path waits for the buffer to drain.
        if (busy or self.flow.write_paused or not isinstance(svc, Services) or self.access_log
                or self.parser.get_http_version() != "1.1" or not self.parser.should_keep_alive()
                or self.parser.should_upgrade()):
            return False
        answer = raw_answer(svc, self.parser.get_method(), self.url, self.headers, self.server_state.default_headers)
        if answer is None:
            return False
        self.transport.writelines(answer)
        self._direct = True
        return True

    def on_message_complete(self) -> None:
        self._message_complete = True
        self._begun = False
        self._in_headers = True
        self._header_bytes = 0
        self._disarm()
        if self._direct:  # answered at the end of its headers; it had no body
            self._direct = False
            self.on_response_complete()
            return
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._message_complete and not self.transport.is_closing():
            # Answered before the body was read: whatever is still coming is discarded, but it must come.
            self._arm(self.body_timeout, self._body_late)

    # timers

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if not self._begun:  # never sent a byte: nobody to answer
            if not self.transport.is_closing():
                self.transport.close()
            return
        self._refuse(408, "header_timeout", f"the request headers did not arrive within {self.header_timeout:g}s")

    def _stop_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _write_late(self) -> None:
        self._write_deadline = None
        self.logger.info("a client did not take its response for %gs; connection reset", self.write_timeout)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: a reset, so the kernel drops what the client did not take too (a plain close would keep
            # sending it, up to the socket's send buffer, for as long as the client keeps its window shut).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer *status* as problem+json (unless a response is half-written), then close the connection.

        The close lingers: closing a socket with unread input makes the kernel send a reset, which
        can destroy the answer before the client reads it. So the write side is shut, whatever still
        arrives is dropped, and the socket closes when the client closes or after LINGER_SECONDS.
        """
        self._disarm()
        if self.transport.is_closing() or self._refused:
            return
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            if self.cycle.response_started:
                self.transport.close()  # a response is half-written: nothing can be added to it
                return
            # The body is malformed (bad chunk framing) while the app waits for it: the app sees a
            # disconnect, whatever it answers goes nowhere, and the client gets this answer instead.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = problem_body(status, code, detail)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [name + b": " + value + b"\r\n" for name, value in security_headers(PROBLEM_JSON)]
        head += [b"content-type: " + PROBLEM_JSON + b"\r\n", b"content-length: %d\r\n" % len(body),
                 b"x-request-id: " + new_request_id() + b"\r\n", b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)
