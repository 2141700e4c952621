"""Starlette responses from cached entries (server.cache) and from bytes that carry only a validator.

Shared by the edges that serve cacheable GETs: reader pages (server.pages) and the first page of
a blog's posts (server.api). Conditional requests are answered here: `If-None-Match` naming the
current tag gets 304 with no body; a malformed value simply matches nothing.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from server.cache import Entry
from server.negotiate import none_match


def cached_response(request: Request, entry: Entry) -> Response:
    """The response for *request* from a cache entry: 200 in the best coding the client takes, or 304."""
    accept = request.headers.get("accept-encoding")
    status, rendition = entry.answer(accept.encode("latin-1") if accept else None, _if_none_match(request))
    response = Response(status_code=status)
    if status == 304:
        response.raw_headers = list(rendition.not_modified)
    else:
        response.body = rendition.body
        response.raw_headers = list(rendition.headers)
    return response


def validated(request: Request, body: bytes, media_type: bytes) -> Response:
    """A response revalidated on every use: an ETag of its bytes, `no-cache`, and 304 when the client has them."""
    tag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
    headers = [(b"etag", tag), (b"cache-control", b"no-cache")]
    match = _if_none_match(request)
    if match is not None and none_match(match, (tag,)):
        response = Response(status_code=304)
    else:
        response = Response(status_code=200)
        response.body = body
        headers = [(b"content-type", media_type), (b"content-length", b"%d" % len(body)), *headers]
    response.raw_headers = headers
    return response


def _if_none_match(request: Request) -> bytes | None:
    value = request.headers.get("if-none-match")
    return value.encode("latin-1") if value is not None else None
