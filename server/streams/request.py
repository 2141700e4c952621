"""What a stream request asks for (blog, resume position, conflation) and whether its origin may ask."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.parsing import ascii_int

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
BAD_EVENT_ID = "Last-Event-ID must be the id of an event sent here (epoch:seq, or a bare seq)"


class BadStreamRequest(ValueError):
    """The resume parameters are malformed; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class StreamRequest:
    blog_id: str
    since: int | None
    epoch: str | None
    conflate: bool = False  # `?conflate=1`: a lagging reader may get `conflated` notices instead of old edits


def parse_stream_request(blog_id: str, query: Mapping[str, str], last_event_id: str | None = None) -> StreamRequest:
    """*blog_id* from the path; `since`/`epoch`/`conflate` from the *query*, or from Last-Event-ID (SSE).

    Last-Event-ID is `<epoch>:<seq>` (what this server's SSE ids say) or a bare `<seq>` (v1, resumes
    in the query's epoch or the current one); it wins over `since`, and its epoch over `?epoch`.
    """
    from_header = last_event_id not in (None, "")
    raw_since = last_event_id if from_header else query.get("since")
    epoch = query.get("epoch") or None
    if from_header and raw_since and ":" in raw_since:
        epoch, _, raw_since = raw_since.rpartition(":")
        if not _is_epoch(epoch) or not raw_since:
            raise BadStreamRequest("Last-Event-ID", BAD_EVENT_ID)
    since = None
    if raw_since:
        since = ascii_int(raw_since)
        if since is None:
            if from_header:  # name what the client sent, though it means the same as since
                raise BadStreamRequest("Last-Event-ID", BAD_EVENT_ID)
            raise BadStreamRequest("since", "since must be a non-negative integer seq")
    if epoch is not None and not _is_epoch(epoch):
        raise BadStreamRequest("epoch", "epoch must be the epoch string the server sent")
    conflate = query.get("conflate", "0")
    if conflate not in ("0", "1", "true", "false"):
        raise BadStreamRequest("conflate", "conflate must be 1 or 0")
    return StreamRequest(blog_id, since, epoch, conflate in ("1", "true"))


def _is_epoch(text: str) -> bool:
    return 0 < len(text) <= 64 and text.isascii() and text.isalnum()


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Exact-match origin policy for streams.

    A request without Origin (not a browser: load tests, curl) is allowed. A browser origin is
    allowed when it is this server's own origin, or in LIVEPUSH_ALLOWED_ORIGINS, or, when that
    list is unset, a localhost origin. `*` in the list allows every origin.
    """
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme in ("http", "https") and parts.netloc == host.lower():
        return True
    return not allowed and parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS
