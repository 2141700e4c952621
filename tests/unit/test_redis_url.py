"""REDIS_URL: one Redis or the Sentinels of a named primary; a malformed one is refused naming the variable."""

from __future__ import annotations

import pytest

from server.redis_url import RedisTarget, parse_redis_url
from server.settings import Settings, SettingsError


def test_a_single_redis_keeps_its_url() -> None:
    target = parse_redis_url("rediss://:secret@cache.example:6380/2")
    assert (target.kind, target.db, target.tls, target.url) == ("single", 2, True, "rediss://:secret@cache.example:6380/2")
    assert "secret" not in target.for_logs()


def test_sentinels_name_their_primary_with_password_and_db() -> None:
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2:26380,[::1]/live-main/3?sentinel_password=sp")
    assert target == RedisTarget("sentinel", target.url, hosts=(("s1", 26379), ("s2", 26380), ("::1", 26379)),
                                 primary="live-main", db=3, password="pw", sentinel_password="sp")
    assert target.for_logs() == "redis+sentinel://s1:26379,s2:26380,::1:26379/live-main"
    assert parse_redis_url("rediss+sentinel://s1/m?db=4").db == 4 and parse_redis_url("rediss+sentinel://s1/m").tls


@pytest.mark.parametrize(("url", "says"), [
    ("http://x", "must start with"),
    ("redis://host:99999/0", "port"),
    ("redis://host/zero", "database"),
    ("redis:///0", "no host"),
    ("redis+sentinel://s1:26379", "names no primary"),
    ("redis+sentinel://s1:port/m", "port"),
    ("redis+sentinel://s1,,s2/m", "names no host"),
    ("redis+sentinel://s1/m/1/extra", "/<primary-name>[/<db>]"),
    ("redis+sentinel://s1/m?master=x", "unknown option 'master'"),
    ("redis+sentinel://:hunter2@s1/m/x", "database"),
])
def test_a_malformed_url_is_refused_naming_redis_url(url: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"REDIS_URL": url})
    assert "REDIS_URL" in str(caught.value) and says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_wait_settings_are_bounded() -> None:
    settings = Settings.from_env({"LIVEPUSH_REDIS_WAIT_REPLICAS": "2", "LIVEPUSH_REDIS_WAIT_TIMEOUT": "0.25"})
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout) == (2, 0.25)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LIVEPUSH_REDIS_WAIT_REPLICAS": "-1", "LIVEPUSH_REDIS_WAIT_TIMEOUT": "0"})
    assert "LIVEPUSH_REDIS_WAIT_REPLICAS" in str(caught.value) and "LIVEPUSH_REDIS_WAIT_TIMEOUT" in str(caught.value)
