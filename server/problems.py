"""RFC 9457 problem details as bytes: the one builder of `application/problem+json` bodies.

The API's errors (server.api.errors) and the HTTP protocol's own refusals (server.protocols.http:
400, 408, 431 before any app runs) build their bodies here, so both carry the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server import wire

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    408: "Request timeout", 409: "Conflict", 410: "Gone", 412: "Precondition failed", 413: "Content too large",
    415: "Unsupported media type", 422: "Invalid field", 429: "Too many requests",
    431: "Request header fields too large", 500: "Internal server error", 503: "Service unavailable",
}


def problem_body(status: int, code: str, detail: str, *, field: str | None = None,
                 errors: Sequence[Mapping[str, str]] = (), extensions: Mapping[str, Any] | None = None) -> bytes:
    """`{"type", "title", "status", "detail", "code"}`, plus `field`, `errors` and *extensions* when given."""
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
                            "detail": detail, "code": code}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = list(errors)
    if extensions:
        body.update(extensions)
    return wire.dumps(body)
