"""`REDIS_URL` parsed into what the engine connects to: one Redis, or the Sentinels of a named primary.

Syntax only (no network): settings.py calls `parse_redis_url` at start so a malformed URL stops
the server with a message naming REDIS_URL; the engine builds its clients from the same result.

    redis://[[user]:password@]host[:port][/db]        rediss:// for TLS, unix:///path?db=N
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<primary-name>[/db][?options]

For Sentinel the user and password (and TLS, with rediss+sentinel://) are those of the Redis
servers; Sentinels that want their own give `sentinel_username` / `sentinel_password` options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from server.parsing import parse_cluster_url

SENTINEL_PORT = 26379
_SINGLE = ("redis", "rediss", "unix")
_SENTINEL = ("redis+sentinel", "rediss+sentinel")
_CLUSTER = ("redis+cluster", "rediss+cluster")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password", "db")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the engine's Redis is. `url` is the setting as given (it may hold a password)."""

    kind: Literal["single", "sentinel", "cluster"]
    url: str
    hosts: tuple[tuple[str, int], ...] = ()  # Sentinel addresses, or a Cluster's startup nodes
    primary: str = ""  # the name the Sentinels monitor
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def for_logs(self) -> str:
        """The URL without credentials."""
        if self.kind != "single":
            hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
            return f"{self.url.split('://', 1)[0]}://{hosts}/{self.primary}"
        return self.url.split("://", 1)[0] + "://" + self.url.split("://", 1)[-1].split("@")[-1]


def parse_redis_url(url: str) -> RedisTarget:
    """The target *url* names; ValueError with a sentence saying what is wrong (without the password)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _SENTINEL:
        return _sentinel(url, scheme)
    if scheme in _CLUSTER:
        nodes, _ = parse_cluster_url(url)
        return RedisTarget("cluster", url, hosts=tuple(nodes), tls=scheme == "rediss+cluster")
    if scheme not in _SINGLE:
        raise ValueError("must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError("the port is not a number between 0 and 65535") from None
    if scheme != "unix" and not parts.hostname:
        raise ValueError("names no host")
    db = parse_qs(parts.query).get("db", [parts.path.strip("/") if scheme != "unix" else ""])[0] or "0"
    return RedisTarget("single", url, db=_db(db), tls=scheme == "rediss")


def _sentinel(url: str, scheme: str) -> RedisTarget:
    rest = url.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    credentials, _, hostlist = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    hosts = tuple(_address(item) for item in hostlist.split(","))
    names = [unquote(part) for part in path.split("/") if part]
    if not names:
        raise ValueError("names no primary: redis+sentinel://host:26379,host2:26379/<primary-name>")
    if len(names) > 2:
        raise ValueError("the path is /<primary-name>[/<db>]")
    options = {name: values[-1] for name, values in parse_qs(query).items()}
    unknown = sorted(set(options) - set(_SENTINEL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_SENTINEL_OPTIONS)})")
    db = names[1] if len(names) == 2 else options.get("db", "0")
    return RedisTarget("sentinel", url, hosts=hosts, primary=names[0], db=_db(db),
                       username=unquote(username) or None, password=unquote(password) or None,
                       tls=scheme.startswith("rediss"), sentinel_username=options.get("sentinel_username"),
                       sentinel_password=options.get("sentinel_password"))


def _address(item: str) -> tuple[str, int]:
    parts = urlsplit("//" + item.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"Sentinel {item!r}: the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise ValueError(f"Sentinel {item!r} names no host")
    return parts.hostname, port or SENTINEL_PORT


def _db(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 15_999:
        raise ValueError(f"database {text!r} is not a number")
    return int(text)
