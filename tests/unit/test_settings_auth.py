"""Settings from the environment, and publisher tokens."""

from __future__ import annotations

import pytest

from server.auth import Authenticator, Unauthorized, mint_token, parse_ttl
from server.settings import Settings, SettingsError

SECRET = "s" * 40


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert (settings.redis_url, settings.jwt_secret, settings.demo, settings.host, settings.port) == \
        (None, None, True, "127.0.0.1", 8000)
    assert settings.admin_token_generated and len(settings.admin_token) >= 16
    assert settings.allowed_origins == ()


def test_values_are_parsed() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:7000/0", "LIVEPUSH_DEMO": "0", "PORT": "9000",
                                  "LIVEPUSH_ALLOWED_ORIGINS": "https://news.example, https://Blog.example/",
                                  "LIVEPUSH_ADMIN_TOKEN": "a" * 20})
    assert settings.redis_url == "redis://127.0.0.1:7000/0" and settings.demo is False and settings.port == 9000
    assert settings.allowed_origins == ("https://news.example", "https://blog.example")
    assert settings.admin_token == "a" * 20 and not settings.admin_token_generated


def test_every_bad_variable_is_named() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PORT": "eighty", "LIVEPUSH_DEMO": "maybe", "REDIS_URL": "http://x",
                           "LIVEPUSH_JWT_SECRET": "short", "LIVEPUSH_ALLOWED_ORIGINS": "news.example",
                           "LIVEPUSH_HISTORY_SIZE": "10"})
    message = str(caught.value)
    for name in ("PORT", "LIVEPUSH_DEMO", "REDIS_URL", "LIVEPUSH_JWT_SECRET", "LIVEPUSH_ALLOWED_ORIGINS",
                 "LIVEPUSH_HISTORY_SIZE"):
        assert name in message


def test_admin_token_and_scoped_tokens() -> None:
    auth = Authenticator("admin-token-0123456789", SECRET)
    assert auth.authenticate("admin-token-0123456789").admin
    principal = auth.authenticate(mint_token(SECRET, ["b1", "b2"], 60, subject="desk"))
    assert principal.subject == "desk" and principal.may_write("b1") and not principal.may_write("b3")
    with pytest.raises(Unauthorized):
        auth.authenticate("admin-token-012345678")
    with pytest.raises(Unauthorized, match="expired"):
        auth.authenticate(mint_token(SECRET, ["b1"], 60, now=1000))


def test_without_a_secret_no_jwt_is_accepted() -> None:
    with pytest.raises(Unauthorized):
        Authenticator("admin-token-0123456789", None).authenticate(mint_token(SECRET, ["*"], 60))


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1h", "1y", "h"])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


def test_log_lines_are_json_with_the_request_id_and_escaped() -> None:
    import logging

    import orjson

    from server.logs import JsonFormatter, request_id

    token = request_id.set("r-1")
    try:
        record = logging.LogRecord("livepush.test", logging.WARNING, __file__, 1, "headline %s", ("a\r\nforged",), None)
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["message"] == "headline a\r\nforged" and parsed["request_id"] == "r-1"
    assert parsed["level"] == "warning" and parsed["time"].endswith("Z")


def test_serve_raises_the_open_files_limit_to_the_hard_limit() -> None:
    import resource

    from server.cli import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        assert raise_open_files_limit() == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_quota_settings_have_bounded_defaults_and_bad_values_are_named() -> None:
    """Quotas are on by default; a value out of range or not a number is refused naming its variable."""
    defaults = Settings.from_env({})
    assert (defaults.max_posts_per_blog, defaults.max_blogs) == (10_000, 10_000)
    assert (defaults.history_bytes, defaults.snapshot_cache_bytes) == (4 << 20, 16 << 20)
    chosen = Settings.from_env({"LIVEPUSH_MAX_POSTS_PER_BLOG": "0", "LIVEPUSH_MAX_BLOGS": "50",
                                "LIVEPUSH_HISTORY_BYTES": "65536", "LIVEPUSH_SNAPSHOT_CACHE_BYTES": "0"})
    assert (chosen.max_posts_per_blog, chosen.max_blogs, chosen.history_bytes, chosen.snapshot_cache_bytes) == (
        0, 50, 65536, 0)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LIVEPUSH_MAX_POSTS_PER_BLOG": "-1", "LIVEPUSH_MAX_BLOGS": "many",
                           "LIVEPUSH_HISTORY_BYTES": "1000", "LIVEPUSH_SNAPSHOT_CACHE_BYTES": "1e9"})
    for name in ("LIVEPUSH_MAX_POSTS_PER_BLOG", "LIVEPUSH_MAX_BLOGS", "LIVEPUSH_HISTORY_BYTES",
                 "LIVEPUSH_SNAPSHOT_CACHE_BYTES"):
        assert name in str(caught.value)
