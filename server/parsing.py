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

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

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


# TLS settings a `rediss+cluster://` URL may carry in its query, as redis-py's `rediss://` URLs do.
_CLUSTER_TLS: dict[str, Callable[[str], Any]] = {
    "ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str, "ssl_cert_reqs": str,
    "ssl_check_hostname": lambda value: {"true": True, "false": False}[value.lower()]}
_CERT_REQS = ("none", "optional", "required")


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and connection options of
    `redis+cluster://[user:pass@]h1:7000,h2:7001` or `rediss+cluster://…?ssl_ca_certs=/path/ca.crt`."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+cluster", "rediss+cluster"):
        raise ClusterUrlError("a Cluster URL starts with redis+cluster:// or rediss+cluster://")
    options: dict[str, Any] = {"ssl": parts.scheme == "rediss+cluster"}
    options.update(_cluster_tls_options(parts.query, tls=options["ssl"]))
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isascii() or not port.isdigit():
            raise ClusterUrlError(f"cluster node {item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    if userinfo:
        user, _, password = userinfo.partition(":")
        options["username"] = unquote(user) or None
        options["password"] = unquote(password) or None
    return nodes, options


def _cluster_tls_options(query: str, tls: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _CLUSTER_TLS:
            raise ClusterUrlError(f"unknown option {name!r} (a Cluster URL takes {', '.join(_CLUSTER_TLS)})")
        if not tls:
            raise ClusterUrlError(f"option {name!r} needs TLS: use rediss+cluster://")
        try:
            options[name] = _CLUSTER_TLS[name](value)
        except KeyError:
            raise ClusterUrlError(f"option {name!r} must be true or false") from None
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise ClusterUrlError(f"option 'ssl_cert_reqs' must be one of {', '.join(_CERT_REQS)}")
    return options
