"""Settings of the public URL, the page cache and the index; and the header parsing the cache relies on."""

from __future__ import annotations

import pytest

from server.negotiate import choose_coding, none_match
from server.settings import Settings, SettingsError


def test_public_url_defaults_to_what_serve_prints() -> None:
    assert Settings.from_env({}).base_url == "http://localhost:8000"
    assert Settings.from_env({"PORT": "9001", "HOST": "0.0.0.0"}).base_url == "http://localhost:9001"  # noqa: S104
    assert Settings.from_env({"HOST": "10.1.2.3"}).base_url == "http://10.1.2.3:8000"
    assert Settings.from_env({"LIVEPUSH_PUBLIC_URL": "https://Live.Example/"}).base_url == "https://live.example"
    assert Settings.from_env({"LIVEPUSH_PUBLIC_URL": "http://live.example:8443"}).base_url == "http://live.example:8443"


@pytest.mark.parametrize("value", ["live.example", "ftp://live.example", "https://live.example/blogs",
                                   "https://live.example?x=1", "https://user:pw@live.example", "https://",
                                   "https://live.example:99999", "https://live.example#top"])
def test_a_public_url_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="LIVEPUSH_PUBLIC_URL"):
        Settings.from_env({"LIVEPUSH_PUBLIC_URL": value})


def test_cache_settings_and_their_defaults() -> None:
    default = Settings.from_env({})
    assert (default.page_cache_bytes, default.page_max_age, default.page_s_maxage,
            default.page_stale_while_revalidate, default.page_stale_if_error, default.index_page_size) == \
        (64 << 20, 0, 2, 30, 600, 50)
    assert default.forwarded_allow_ips == ""
    given = Settings.from_env({"LIVEPUSH_PAGE_CACHE_BYTES": "0", "LIVEPUSH_PAGE_S_MAXAGE": "5",
                               "LIVEPUSH_FORWARDED_ALLOW_IPS": "10.0.0.1", "LIVEPUSH_INDEX_PAGE_SIZE": "10"})
    assert (given.page_cache_bytes, given.page_s_maxage, given.forwarded_allow_ips, given.index_page_size) == \
        (0, 5, "10.0.0.1", 10)
    with pytest.raises(SettingsError, match="LIVEPUSH_PAGE_S_MAXAGE"):
        Settings.from_env({"LIVEPUSH_PAGE_S_MAXAGE": "-1"})


@pytest.mark.parametrize(("header", "coding"), [
    (None, "identity"), (b"", "identity"), (b"gzip, deflate, br, zstd", "br"), (b"gzip", "gzip"),
    (b"br;q=0.5, gzip", "gzip"), (b"*", "br"), (b"*;q=0", "identity"), (b"br;q=0, *", "gzip"),
    (b"gzip;q=abc", "identity"), (b"br;q=2", "identity"), (b"GZIP", "gzip"), (b"\xff\xfe", "identity"),
    (b",,;;q=", "identity"), (b"gzip;q=0.001", "gzip"), (b"br;q=1.0001", "identity"),
])
def test_accept_encoding(header: bytes | None, coding: str) -> None:
    assert choose_coding(header) == coding


def test_if_none_match_is_weak_and_total() -> None:
    tags = (b'"1.abc"', b'"1.abc.br"')
    assert none_match(b'"1.abc"', tags) and none_match(b'W/"1.abc.br"', tags) and none_match(b'"x", "1.abc"', tags)
    assert none_match(b"*", tags)
    for other in (b'"1.ab"', b"1.abc", b"", b",", b"W/", b'"1.abc', b"\xff"):
        assert not none_match(other, tags)
