"""Cache hits for reader pages, answered before routing and the middleware stack.

A reader page that is current in the cache (server.pages.cache) needs no routing, no Request
object and no middleware: this ASGI middleware, outermost after Starlette's error handler, finds
the entry from the raw path and query string and sends its pre-built header lines and bytes. The
headers a routed response would gain on the way out are in those lines too: the security headers
(server.headers) are built into the entry, and the request id is echoed or generated here exactly
as server.logs.RequestIds does. Everything else (a miss, another path, another method) goes down
the stack unchanged, where the page route renders, stores and answers the same bytes.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from server.cache import Key, Rendition
from server.logs import valid_request_id
from server.negotiate import none_match
from server.services import Services

PAGE_PREFIX = "/blogs/"


def page_key(blog: str, query_string: bytes) -> Key:
    """The cache key of a reader page, from the raw query string: only `order` and `before` count.

    Other parameters (utm_source and friends) select the same page. The cursor is taken as given;
    the route maps a cursor it cannot read to the first page's key.
    """
    order, before = "newest", ""
    if query_string:
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if name == "order":
                order = "oldest" if value == "oldest" else "newest"
            elif name == "before":
                before = value
    return ("page", blog, order, before)


def lookup(svc: Services, method: str, path: str, query: bytes,
           headers: Iterable[tuple[bytes, bytes]]) -> tuple[int, Rendition, bytes] | None:
    """(status, rendition, request id) when this request is a current cached page; None sends it down the stack.

    A request with an Origin (a cross-origin read: CORS is the stack's business) or a body goes down too.
    """
    blog = path[len(PAGE_PREFIX):]
    if (method != "GET" and method != "HEAD") or not blog or "/" in blog:
        return None
    entry = svc.page_cache.current(page_key(blog, query))
    if entry is None:
        return None
    read = _read_headers(headers)
    if read is None:
        return None
    accept, match, rid = read
    status, rendition = entry.answer(accept, match)
    return status, rendition, rid


# Ids like RequestIds makes (16 hex digits) without a syscall per request: a random prefix per process
# and a counter, so they stay unique across workers and restarts.
_ID_PREFIX = secrets.token_hex(4).encode()
_ids = itertools.count(secrets.randbelow(1 << 32))


def new_request_id() -> bytes:
    """A fresh request id (what the request-id middleware would have made)."""
    return b"%s%08x" % (_ID_PREFIX, next(_ids) & 0xFFFFFFFF)


_STACK_ONLY = frozenset({b"origin", b"content-length", b"transfer-encoding", b"expect"})


def _read_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None, bytes] | None:
    """(Accept-Encoding, If-None-Match, the request id to answer with) in one pass; None when a header
    only the ASGI stack handles is present."""
    accept = match = rid = None
    for name, value in headers:
        if name == b"accept-encoding":
            accept = value
        elif name == b"if-none-match":
            match = value
        elif name == b"x-request-id":
            rid = value
        elif name in _STACK_ONLY:
            return None
    return accept, match, rid if rid is not None and valid_request_id(rid) else new_request_id()


def raw_answer(svc: Services, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
               default_headers: list[tuple[bytes, bytes]]) -> list[bytes] | None:
    """The whole HTTP/1.1 response to a cached-page or current-asset request, as bytes to write; else None.

    For a server protocol that answers before making an ASGI request (server.protocols.http).
    """
    if b"%" in url or b"#" in url:
        return None
    if url.startswith(svc.assets.prefix):
        return _asset_answer(svc, method, url, headers, default_headers)
    if not url.startswith(_PAGE_PREFIX_BYTES):
        return None
    path, _, query = url.partition(b"?")
    svc_answer = lookup(svc, "GET" if method == b"GET" else method.decode("latin-1"), path.decode("latin-1"), query,
                        headers)
    if svc_answer is None:
        return None
    status, rendition, rid = svc_answer
    head = [_STATUS_LINES[status]]
    for name, value in default_headers:
        head += (name, b": ", value, b"\r\n")
    if status == 304:
        head += (rendition.raw_not_modified, b"x-request-id: ", rid, b"\r\n\r\n")
        return [b"".join(head)]
    head += (rendition.raw, b"x-request-id: ", rid, b"\r\n\r\n")
    return [b"".join(head), rendition.body] if method == b"GET" else [b"".join(head)]


def _asset_answer(svc: Services, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]],
                  default_headers: list[tuple[bytes, bytes]]) -> list[bytes] | None:
    """A widget file of the current version from memory (server.pages.assets.AssetTable); None sends it down."""
    asset = svc.assets.get(url.partition(b"?")[0])
    if asset is None or (method != b"GET" and method != b"HEAD"):
        return None
    read = _read_headers(headers)
    if read is None:
        return None
    _, match, rid = read
    status = 304 if match is not None and none_match(match, (asset.etag,)) else 200
    head = [_STATUS_LINES[status]]
    for name, value in default_headers:
        head += (name, b": ", value, b"\r\n")
    head += (asset.head if status == 200 else asset.not_modified, b"x-request-id: ", rid, b"\r\n\r\n")
    return [b"".join(head), asset.body] if status == 200 and method == b"GET" else [b"".join(head)]


_PAGE_PREFIX_BYTES = PAGE_PREFIX.encode()
_STATUS_LINES = {200: b"HTTP/1.1 200 OK\r\n", 304: b"HTTP/1.1 304 Not Modified\r\n"}


class CachedPages:
    """ASGI middleware: serve current cached reader pages (GET and HEAD) without entering the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PAGE_PREFIX) and await self._hit(scope, send):
            return
        await self.app(scope, receive, send)

    async def _hit(self, scope: Scope, send: Send) -> bool:
        state = scope.get("state")
        svc = state.get("services") if state else None
        if not isinstance(svc, Services):
            return False
        found = lookup(svc, scope["method"], scope["path"], scope["query_string"], scope["headers"])
        if found is None:
            return False
        status, rendition, rid = found
        if status == 304:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [*rendition.direct_not_modified, (b"x-request-id", rid)]})
            await send({"type": "http.response.body", "body": b""})
            return True
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*rendition.direct, (b"x-request-id", rid)]})
        await send({"type": "http.response.body", "body": rendition.body if scope["method"] == "GET" else b""})
        return True
