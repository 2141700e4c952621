"""Settings read from the environment: the only module that looks at os.environ.

Every variable of the contract (and the few this project adds) is parsed and
validated here, once, at start. A bad value stops the server with a message that
names the variable, instead of failing later on the first request.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from server.redis_url import parse_redis_url


class SettingsError(ValueError):
    """One or more environment variables are invalid; the message names each one."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration. Build it with `Settings.from_env()` or directly in tests."""

    redis_url: str | None = None
    redis_wait_replicas: int = 0
    redis_wait_timeout: float = 1.0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_token_generated: bool = False
    jwt_secret: str | None = None
    jwt_audience: str = "livepush"
    allowed_origins: tuple[str, ...] = ()
    demo: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    history_size: int = 1000
    history_bytes: int = 4 << 20
    max_posts_per_blog: int = 10_000
    max_blogs: int = 10_000
    snapshot_size: int = 20
    snapshot_cache_bytes: int = 16 << 20
    max_body_bytes: int = 256 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 60.0
    ping_interval: float = 25.0
    reader_buffer_bytes: int = 1024 * 1024
    idempotency_ttl: int = 24 * 3600
    direct_write: bool = True
    drain_seconds: float = 10.0
    canary_timeout: float = 10.0
    max_streams: int = 0
    max_streams_per_address: int = 0
    max_blogs_per_stream: int = 50
    max_loop_lag: float = 0.0
    write_rate: float = 100.0
    write_burst: float = 500.0
    access_log: bool = False
    log_json: bool = True
    log_level: str = "info"
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0
    webhook_retry_window: float = 24 * 3600.0
    webhook_backoff_base: float = 1.0
    webhook_backoff_max: float = 3600.0
    webhook_max_backlog: int = 1000
    webhook_lease: float = 10.0
    webhook_poll_interval: float = 1.0
    webhook_max_endpoints: int = 100
    public_url: str = ""
    forwarded_allow_ips: str = ""
    page_cache_bytes: int = 64 * 1024 * 1024
    page_max_age: int = 0
    page_s_maxage: int = 2
    page_stale_while_revalidate: int = 30
    page_stale_if_error: int = 600
    index_page_size: int = 50

    @property
    def base_url(self) -> str:
        """The public base URL every absolute link is built from: LIVEPUSH_PUBLIC_URL, else what `serve` prints."""
        return self.public_url or default_public_url(self.host, self.port)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment; raise SettingsError listing every bad variable."""
        env = os.environ if environ is None else environ
        errors: list[str] = []
        reader = _Reader(env, errors)

        redis_url = reader.text("REDIS_URL")
        if redis_url is not None:
            try:
                parse_redis_url(redis_url)
            except ValueError as exc:
                errors.append(f"REDIS_URL: {exc}")
        admin_token = reader.text("LIVEPUSH_ADMIN_TOKEN")
        if admin_token is not None and len(admin_token) < 16:
            errors.append("LIVEPUSH_ADMIN_TOKEN: must be at least 16 characters")
        jwt_secret = reader.text("LIVEPUSH_JWT_SECRET")
        if jwt_secret is not None and len(jwt_secret) < 32:
            errors.append("LIVEPUSH_JWT_SECRET: must be at least 32 characters (256 bits for HS256)")
        listed = (reader.text("LIVEPUSH_ALLOWED_ORIGINS") or "").split(",")
        origins = tuple(o.strip().rstrip("/").lower() for o in listed if o.strip())
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                errors.append(f"LIVEPUSH_ALLOWED_ORIGINS: {origin!r} is not an origin like https://news.example")

        settings = cls(
            redis_url=redis_url,
            redis_wait_replicas=reader.integer("LIVEPUSH_REDIS_WAIT_REPLICAS", 0, low=0, high=100),
            redis_wait_timeout=reader.number("LIVEPUSH_REDIS_WAIT_TIMEOUT", 1.0, low=0.01, high=60.0),
            admin_token=admin_token or secrets.token_urlsafe(24),
            admin_token_generated=admin_token is None,
            jwt_secret=jwt_secret,
            jwt_audience=reader.text("LIVEPUSH_JWT_AUDIENCE") or "livepush",
            allowed_origins=origins,
            demo=reader.flag("LIVEPUSH_DEMO", default=True),
            host=reader.text("HOST") or "127.0.0.1",
            port=reader.integer("PORT", 8000, low=0, high=65535),
            history_size=reader.integer("LIVEPUSH_HISTORY_SIZE", 1000, low=1000, high=1_000_000),
            history_bytes=reader.integer("LIVEPUSH_HISTORY_BYTES", 4 << 20, low=64 * 1024, high=1 << 30),
            max_posts_per_blog=reader.integer("LIVEPUSH_MAX_POSTS_PER_BLOG", 10_000, low=0, high=10_000_000),
            max_blogs=reader.integer("LIVEPUSH_MAX_BLOGS", 10_000, low=0, high=10_000_000),
            snapshot_size=reader.integer("LIVEPUSH_SNAPSHOT_SIZE", 20, low=1, high=200),
            snapshot_cache_bytes=reader.integer("LIVEPUSH_SNAPSHOT_CACHE_BYTES", 16 << 20, low=0, high=1 << 32),
            max_body_bytes=reader.integer("LIVEPUSH_MAX_BODY_BYTES", 256 * 1024, low=1024, high=16 * 1024 * 1024),
            header_timeout=reader.number("LIVEPUSH_HEADER_TIMEOUT", 10.0, low=0.5, high=600.0),
            body_timeout=reader.number("LIVEPUSH_BODY_TIMEOUT", 30.0, low=0.5, high=3600.0),
            write_timeout=reader.number("LIVEPUSH_WRITE_TIMEOUT", 60.0, low=0.5, high=3600.0),
            ping_interval=reader.number("LIVEPUSH_PING_INTERVAL", 25.0, low=0.05, high=3600.0),
            reader_buffer_bytes=reader.integer("LIVEPUSH_READER_BUFFER_BYTES", 1 << 20, low=16 * 1024, high=1 << 30),
            idempotency_ttl=reader.integer("LIVEPUSH_IDEMPOTENCY_TTL", 24 * 3600, low=60, high=30 * 24 * 3600),
            direct_write=reader.flag("LIVEPUSH_DIRECT_WRITE", default=True),
            access_log=reader.flag("LIVEPUSH_ACCESS_LOG", default=False),
            log_json=(reader.text("LIVEPUSH_LOG_FORMAT") or "json").lower() != "text",
            drain_seconds=reader.number("LIVEPUSH_DRAIN_SECONDS", 10.0, low=0.0, high=600.0),
            canary_timeout=reader.number("LIVEPUSH_CANARY_TIMEOUT", 10.0, low=2.0, high=600.0),
            max_streams=reader.integer("LIVEPUSH_MAX_STREAMS", 0, low=0, high=10_000_000),
            max_streams_per_address=reader.integer("LIVEPUSH_MAX_STREAMS_PER_ADDRESS", 0, low=0, high=10_000_000),
            max_blogs_per_stream=reader.integer("LIVEPUSH_MAX_BLOGS_PER_STREAM", 50, low=1, high=10_000),
            max_loop_lag=reader.number("LIVEPUSH_MAX_LOOP_LAG", 0.0, low=0.0, high=60.0),
            write_rate=reader.number("LIVEPUSH_WRITE_RATE", 100.0, low=0.0, high=1e6),
            write_burst=reader.number("LIVEPUSH_WRITE_BURST", 500.0, low=1.0, high=1e7),
            log_level=(reader.text("LIVEPUSH_LOG_LEVEL") or "info").lower(),
            webhook_allow_private=reader.flag("LIVEPUSH_WEBHOOK_ALLOW_PRIVATE", default=False),
            webhook_timeout=reader.number("LIVEPUSH_WEBHOOK_TIMEOUT", 10.0, low=0.1, high=120.0),
            webhook_retry_window=reader.number("LIVEPUSH_WEBHOOK_RETRY_WINDOW", 24 * 3600.0, low=1.0,
                                               high=30 * 24 * 3600.0),
            webhook_backoff_base=reader.number("LIVEPUSH_WEBHOOK_BACKOFF_BASE", 1.0, low=0.01, high=3600.0),
            webhook_backoff_max=reader.number("LIVEPUSH_WEBHOOK_BACKOFF_MAX", 3600.0, low=0.01, high=24 * 3600.0),
            webhook_max_backlog=reader.integer("LIVEPUSH_WEBHOOK_MAX_BACKLOG", 1000, low=100, high=1_000_000),
            webhook_lease=reader.number("LIVEPUSH_WEBHOOK_LEASE", 10.0, low=0.5, high=600.0),
            webhook_poll_interval=reader.number("LIVEPUSH_WEBHOOK_POLL_INTERVAL", 1.0, low=0.01, high=60.0),
            webhook_max_endpoints=reader.integer("LIVEPUSH_WEBHOOK_MAX_ENDPOINTS", 100, low=1, high=10_000),
            public_url=_public_url(reader.text("LIVEPUSH_PUBLIC_URL"), errors),
            forwarded_allow_ips=reader.text("LIVEPUSH_FORWARDED_ALLOW_IPS") or reader.text("FORWARDED_ALLOW_IPS") or "",
            page_cache_bytes=reader.integer("LIVEPUSH_PAGE_CACHE_BYTES", 64 << 20, low=0, high=1 << 34),
            page_max_age=reader.integer("LIVEPUSH_PAGE_MAX_AGE", 0, low=0, high=86400),
            page_s_maxage=reader.integer("LIVEPUSH_PAGE_S_MAXAGE", 2, low=0, high=86400),
            page_stale_while_revalidate=reader.integer("LIVEPUSH_PAGE_STALE_WHILE_REVALIDATE", 30, low=0, high=86400),
            page_stale_if_error=reader.integer("LIVEPUSH_PAGE_STALE_IF_ERROR", 600, low=0, high=7 * 86400),
            index_page_size=reader.integer("LIVEPUSH_INDEX_PAGE_SIZE", 50, low=1, high=1000),
        )
        if (env.get("LIVEPUSH_LOG_FORMAT") or "json").strip().lower() not in ("json", "text"):
            errors.append("LIVEPUSH_LOG_FORMAT: json or text")
        if settings.log_level not in ("critical", "error", "warning", "info", "debug"):
            errors.append("LIVEPUSH_LOG_LEVEL: one of critical, error, warning, info, debug")
        if errors:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(errors))
        return settings


def default_public_url(host: str, port: int) -> str:
    """What `livepush serve` prints: http://localhost:PORT for a loopback or wildcard address."""
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _public_url(value: str | None, errors: list[str]) -> str:
    """An origin like https://live.example (no path, query or fragment), without its trailing slash."""
    if value is None:
        return ""
    url = value.rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query
            or parts.fragment or parts.username is not None or parts.password is not None):
        errors.append(f"LIVEPUSH_PUBLIC_URL: {value!r} is not an origin like https://live.example")
        return ""
    return url.lower()


@dataclass(slots=True)
class _Reader:
    env: Mapping[str, str]
    errors: list[str]

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def flag(self, name: str, *, default: bool) -> bool:
        value = (self.text(name) or "").lower()
        if not value:
            return default
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{name}: expected 1/0, true/false, yes/no or on/off, got {value!r}")
        return default

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.errors.append(f"{name}: expected an integer, got {value!r}")
            return default
        if not low <= number <= high:
            self.errors.append(f"{name}: must be between {low} and {high}, got {number}")
            return default
        return number

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.errors.append(f"{name}: expected a number, got {value!r}")
            return default
        if not low <= number <= high:
            self.errors.append(f"{name}: must be between {low} and {high}, got {number}")
            return default
        return number
