"""The load test's typed configuration: what to target, how many readers, what they do.

Built once at the edge (the command line) and handed, without the publisher's token, to every
worker process, so nothing else parses options or reads the environment.

A run may target several nodes of one deployment (`--url` repeated): `url` is the first and
`more_urls` the rest, so a one-node configuration (and its JSON) is what it always was.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["ws", "sse"]
Shape = Literal["flat", "ramp", "spike"]
ServerKind = Literal["livepush", "nchan"]
SHAPES: tuple[Shape, ...] = ("flat", "ramp", "spike")

READERS_PER_PROCESS = 2500
BLOG_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class ConfigError(ValueError):
    """An option is invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server listens, split for raw sockets: host, port, TLS, and a path prefix."""

    host: str
    port: int
    secure: bool
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--url: expected http://host[:port][/prefix], got {url!r}")
        secure = parts.scheme == "https"
        try:
            port = parts.port or (443 if secure else 80)
        except ValueError as exc:
            raise ConfigError(f"--url: {exc}") from exc
        return cls(parts.hostname, port, secure, parts.path.rstrip("/"))

    @property
    def http_base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}{self.prefix}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def is_loopback(self) -> bool:
        """True when every address the host resolves to is a loopback address."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """Every option of a run, with the defaults the command line documents."""

    url: str = "http://127.0.0.1:8000"
    more_urls: tuple[str, ...] = ()
    blog: str = "loadtest"
    readers: int = 100
    transport: Transport = "ws"
    duration: float = 10.0
    ramp: float = 2.0
    publish_rate: float = 0.0
    token: str | None = None
    create_blog: bool = False
    post_bytes: int = 300
    edit_share: float = 0.0
    keep_posts: int = 0
    churn: float = 0.0
    churn_every: float = 5.0
    churn_pause: float = 0.5
    slow: float = 0.0
    slow_every: float = 8.0
    slow_pause: float = 3.0
    sample: float = 1.0
    processes: int = 0
    drain: float = 10.0
    connect_timeout: float = 10.0
    seed: int = 0
    server: ServerKind = "livepush"
    arrivals: float = 0.0
    arrival_shape: Shape = "flat"
    repeat: float = 0.5
    think: float = 0.0
    allow_remote: bool = False
    json_path: str | None = None
    html_path: str | None = None
    quiet: bool = False

    @property
    def target(self) -> Target:
        return Target.parse(self.url)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every node's base URL, the first being `url`."""
        return (self.url, *self.more_urls)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every node, in `--url` order: reader i starts on node i mod N, write n goes to node n mod N."""
        return tuple(Target.parse(url) for url in self.urls)

    @property
    def publishing(self) -> bool:
        return self.publish_rate > 0

    @property
    def nchan(self) -> bool:
        return self.server == "nchan"

    @property
    def connections(self) -> int:
        """Readers plus the arrivals the run expects (each stays connected to the end)."""
        return self.readers + math.ceil(self.arrivals * self.duration)

    def worker_count(self) -> int:
        """--processes, or enough workers to keep each under READERS_PER_PROCESS, at most one per CPU."""
        if self.processes > 0:
            return min(self.processes, max(self.connections, 1))
        wanted = max(1, math.ceil(self.connections / READERS_PER_PROCESS))
        return max(1, min(wanted, os.cpu_count() or 1))

    def for_workers(self) -> LoadConfig:
        """This configuration without the token: workers only read."""
        return LoadConfig(**{name: getattr(self, name) for name in self.__slots__ if name != "token"})

    def public(self) -> dict[str, object]:
        """The options as JSON-ready values, the token left out."""
        values = {name: getattr(self, name) for name in self.__slots__ if name not in ("token", "more_urls")}
        if self.more_urls:
            values["urls"] = list(self.urls)
        values["processes"] = self.worker_count()
        values["publishing_token"] = self.token is not None
        return values

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option; also refuse remote targets unless allowed."""
        targets = self.targets
        checks: list[tuple[bool, str]] = [
            (BLOG_ID.fullmatch(self.blog) is not None, "--blog: a slug like my-blog-2024 (a-z, 0-9, -)"),
            (self.readers >= 0, "--readers: must be >= 0"),
            (self.duration > 0, "--duration: must be > 0"),
            (self.ramp >= 0, "--ramp: must be >= 0"),
            (self.publish_rate >= 0, "--publish-rate: must be >= 0"),
            (0 <= self.churn <= 1, "--churn: a fraction between 0 and 1"),
            (0 <= self.slow <= 1, "--slow: a fraction between 0 and 1"),
            (self.churn + self.slow <= 1, "--churn + --slow: together at most 1"),
            (0 < self.sample <= 1, "--sample: a fraction above 0, at most 1"),
            (self.sample == 1 or self.transport == "ws", "--sample below 1 needs --transport ws"),
            (self.churn_every > 0 and self.churn_pause >= 0, "--churn-every must be > 0, --churn-pause >= 0"),
            (self.slow_every > 0 and self.slow_pause > 0, "--slow-every and --slow-pause: must be > 0"),
            (0 <= self.post_bytes <= 60_000, "--post-bytes: between 0 and 60000"),
            (0 <= self.edit_share < 1, "--edit-share: a fraction from 0, below 1"),
            # Deletes take the oldest post and edits one of the newest five: ten apart, they never meet.
            (self.keep_posts == 0 or self.keep_posts >= 10, "--keep-posts: 0 (keep all) or at least 10"),
            (self.processes >= 0, "--processes: must be >= 0 (0: automatic)"),
            (self.drain >= 0 and self.connect_timeout > 0, "--drain must be >= 0, --connect-timeout > 0"),
            (not self.publishing or bool(self.token) or self.nchan, "--publish-rate needs --token (or LIVEPUSH_TOKEN)"),
            (self.server in ("livepush", "nchan"), "--server: livepush or nchan"),
            # Nchan has no resume and no livepush API: readers stay connected, writes are new posts only.
            (not self.nchan or (self.transport == "ws" and not self.churn and not self.slow and not self.edit_share
                                and not self.keep_posts and not self.create_blog),
             "--server nchan: WebSocket readers without --churn, --slow, --edit-share, --keep-posts, --create-blog"),
            # The tool numbers Nchan's writes itself, in order on one connection: one node only.
            (not self.nchan or not self.more_urls, "--server nchan: one --url"),
            (len(set(self.urls)) == len(self.urls), "--url: each node once"),
            (not self.create_blog or bool(self.token), "--create-blog needs --token (or LIVEPUSH_TOKEN)"),
            (self.arrivals >= 0, "--arrivals: must be >= 0"),
            (self.arrival_shape in SHAPES, "--arrival-shape: flat, ramp or spike"),
            (0 <= self.repeat <= 1, "--repeat: a fraction between 0 and 1"),
            (self.think >= 0, "--think: must be >= 0"),
            (self.readers > 0 or self.publishing or self.arrivals > 0,
             "nothing to do: give --readers, --arrivals or --publish-rate"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for target in targets:
            if not self.allow_remote and not target.is_loopback():
                raise ConfigError(f"--url: {target.host} is not a loopback address; load-test only servers you run, "
                                  "and pass --allow-remote to confirm")
