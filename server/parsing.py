"""Strict parsing of what clients put in URLs, headers and tokens.

Python's own rules are wider than any wire format: `str.isdigit()` is true for `²`, `①` and
`٣`, `int()` accepts some of them (and `_`, spaces and signs) and refuses others with a
ValueError, and `int()` of a few thousand digits raises too. Numbers from the network go
through `ascii_int` instead: ASCII digits only, of bounded length, or None. JSON objects
from the network (a request body, a token's claims) go through `no_duplicate_keys`: parsers
disagree on which of two equal keys wins, so neither does. A Redis Cluster URL's node list goes
through `parse_cluster_url` (settings check it at start; the Cluster engine connects with it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

MAX_DIGITS = 15  # seqs, versions, limits: below 2**53, so they also survive a JavaScript client


def ascii_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The non-negative integer written in *text* with 1 to *max_digits* ASCII digits, else None."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


class DuplicateKey(ValueError):
    """A JSON object names *key* twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for `json.loads` that raises DuplicateKey instead of letting the last one win."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


class ClusterUrlError(ValueError):
    """REDIS_URL names a Cluster in a form livepush cannot use."""


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and connection options of `redis+cluster://[user:pass@]h1:7000,h2:7001`."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+cluster", "rediss+cluster"):
        raise ClusterUrlError("a Cluster URL starts with redis+cluster:// or rediss+cluster://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isascii() or not port.isdigit():
            raise ClusterUrlError(f"cluster node {item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    options: dict[str, Any] = {"ssl": parts.scheme == "rediss+cluster"}
    if userinfo:
        user, _, password = userinfo.partition(":")
        options["username"] = unquote(user) or None
        options["password"] = unquote(password) or None
    return nodes, options
