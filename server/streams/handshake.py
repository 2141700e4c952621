"""The WebSocket handshake of `GET /ws/blogs/{blog}` without the ASGI app: one parse, one write.

uvicorn upgrades a connection by writing the request httptools parsed back out as bytes,
parsing them again with websockets, building an ASGI scope and running the app in a task, which
accepts (a write for the 101), attaches the reader and writes its first message (another write).
That cost a reader's handshake ~500 µs of CPU, over ten times what Nginx + Nchan spend. Here the
HTTP protocol (server.protocols.http) offers the request it parsed to `Handshakes.take()`, which:

- takes only a plain RFC 6455 handshake for this route, from an app served as `livepush serve`
  serves it; anything unusual goes on to the ASGI app and its websockets parser, which answers
  exactly as before;
- runs the checks of the ASGI handler, the same code (server.streams.gate: draining, origin,
  since/epoch/conflate, admission caps; unknown blog and storage errors from the attach);
- attaches the reader when nothing needs reading (`Feeds.open_now`: the blog is watched and its
  snapshot cached, or the reader resumes at the relay's position), which is nearly every reader
  of a storm; otherwise (a snapshot or history to read) it changes nothing and leaves the
  handshake to the ASGI handler, so there is one attach that waits, not two;
- writes the 101 and the first message in one write;
- leaves the connection to a `ReaderProtocol` (server.protocols.reader): uvicorn's WebSocket
  protocol as server.protocols.direct extends it, already detached, built without what only the
  handshake and an ASGI handler use (the request parser, the receive queue, the writable event,
  the scope, a task).

It is on with the direct write path (`LIVEPUSH_DIRECT_WRITE`, the default), which it needs.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import httptools
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.utils import accept_key

from server.engine import BlogNotFound
from server.protocols.direct import DirectReader
from server.protocols.reader import ReaderProtocol
from server.services import Services
from server.streams.gate import Refusal, admit, attach_refusal
from server.streams.websocket import _DetachedReader

log = logging.getLogger("livepush.ws")

_PATH = re.compile(r"/ws/blogs/([^/]+)")  # the route's {blog}: anything but a slash, as Starlette matches it
_HEAD = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
_NO_QUERY: dict[str, str] = {}


class Handshakes:
    """The fast path of one app's stream handshakes; the HTTP protocol calls `take()`."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._counters = {kind: svc.metrics.streams.labels("websocket", kind) for kind in ("snapshot", "resume")}
        self.taken = 0  # handshakes answered here rather than by the ASGI app

    def take(self, http: HttpToolsProtocol) -> bool:
        """Answer the WebSocket upgrade *http* just parsed; False (nothing done) to leave it to the ASGI app."""
        url: bytes = http.url
        if not url.startswith(b"/ws/blogs/") or http.scope.get("http_version", "1.1") != "1.1" or \
                http.scope["method"] != "GET" or http.root_path:
            return False
        app: Any = http.config.loaded_app
        trusted = None
        if isinstance(app, ProxyHeadersMiddleware):
            trusted, app = app.trusted_hosts, app.app
        if not isinstance(app, Starlette):  # another wrapper (uvicorn's trace logging) must see the request
            return False
        parsed = httptools.parse_url(url)
        path = parsed.path.decode("latin-1")
        match = _PATH.fullmatch(unquote(path) if "%" in path else path)
        if match is None:
            return False
        fields = _handshake_fields(http.scope["headers"])
        if fields is None:
            return False
        key, origin, host, forwarded = fields
        address = http.client[0] if http.client else "unknown"
        if forwarded and trusted is not None and address in trusted:
            # What uvicorn's ProxyHeadersMiddleware makes of it on the ASGI path.
            forwarded_host, _ = trusted.get_trusted_client_address(b", ".join(forwarded).decode("latin-1"))
            address = forwarded_host or address
        protocol = ReaderProtocol(http)
        if not self._answer(protocol, key, match.group(1), parsed.query, origin, host, address):
            return False
        http.connections.discard(http)
        self.taken += 1
        if protocol.logger.isEnabledFor(logging.INFO):
            protocol.logger.info('%s - "WebSocket %s" [accepted]', address, url.decode("latin-1"))
        return True

    def _answer(self, protocol: ReaderProtocol, key: str, blog_id: str, query: bytes | None, origin: str | None,
                host: str, address: str) -> bool:
        """Refuse, or attach and accept, without waiting; False (nothing changed) when the attach has to read."""
        svc = self._svc
        head = _HEAD + accept_key(key).encode() + b"\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in protocol.default_headers) + b"\r\n"
        try:
            request = admit(svc, blog_id, QueryParams(query) if query else _NO_QUERY, origin, host, address)
        except Refusal as refusal:
            protocol.accept_and_close(head, refusal.close, refusal.reason)
            return True
        limit = svc.settings.reader_buffer_bytes
        protocol.socket.limit_output(limit)
        reader = DirectReader(protocol.socket, limit, conflate=request.conflate)
        # The contract resumes only with both: a seq without its epoch could count in another history.
        since = request.since if request.epoch is not None else None
        try:
            attached = svc.feeds.open_now(reader, request.blog_id, since, request.epoch)
        except BlogNotFound as exc:
            svc.admission.release(address)
            unknown = attach_refusal(exc)
            assert unknown is not None
            protocol.accept_and_close(head, unknown.close, unknown.reason)
            return True
        if attached is None:
            # A snapshot to read, a resume from history, a blog not watched yet: the ASGI handler's
            # attach does it (and its own checks again); one reader per blog change pays for that.
            svc.admission.release(address)
            return False
        self._counters["snapshot" if attached.snapshot else "resume"].inc()
        protocol.accept(head, _DetachedReader(reader, svc, request.blog_id, address))
        svc.keepalive.add(reader)
        return True


def _handshake_fields(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None, str, list[bytes]] | None:
    """(Sec-WebSocket-Key, Origin, Host, X-Forwarded-For values) of a plain handshake; None for anything else.

    uvicorn checked Upgrade and Connection before offering the upgrade. One key that decodes to
    16 bytes and version 13 make the handshake plain; the websockets parser answers the rest.
    """
    key = version = origin = host = upgrade = None
    forwarded: list[bytes] = []
    for name, value in headers:  # names are lower case (uvicorn)
        if name == b"sec-websocket-key":
            if key is not None:
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                return None
            version = value
        elif name == b"origin":
            origin = origin if origin is not None else value
        elif name == b"host":
            host = host if host is not None else value
        elif name == b"x-forwarded-for":
            forwarded.append(value)
        elif name == b"upgrade":
            if upgrade is not None or value.lower() != b"websocket":
                return None
            upgrade = value
    if key is None or version != b"13":
        return None
    try:
        if len(binascii.a2b_base64(key, strict_mode=True)) != 16:
            return None
    except binascii.Error:
        return None
    return (key.decode("latin-1"), None if origin is None else origin.decode("latin-1"),
            "" if host is None else host.decode("latin-1"), forwarded)

