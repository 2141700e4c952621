"""Feeds over HTTP on both engines: served from the page cache with the pages' validators, read by feedparser.

What each format says is checked in tests/unit/test_feeds.py; here: the routes, the caching, the
links from the reader page, and that a forged Host never reaches a feed's absolute URLs.
"""

from __future__ import annotations

from typing import Any

import feedparser
import pytest

from tests.conftest import LiveServer, wait_until

FORMATS = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}


async def heard(server: LiveServer, seq: int) -> None:
    """Until this process has the event back from the engine: a cached feed is current as far as the process
    has heard (docs/API.md, Caching), so a read right after a write may still get the previous state."""
    await wait_until(lambda: server.services.relay.position("b1")[0] >= seq, 5, f"event {seq} back from the engine")


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_a_feed_has_a_strong_etag_answers_304_and_moves_with_each_event(
        server: LiveServer, blog: dict[str, Any], fmt: str) -> None:
    await server.publish(headline="First")
    first = await server.http.get(f"/blogs/b1/feed.{fmt}")
    assert first.status_code == 200 and first.headers["content-type"].startswith(FORMATS[fmt])
    tag = first.headers["etag"]
    assert tag.startswith('"') and "public" in first.headers["cache-control"]
    again = await server.http.get(f"/blogs/b1/feed.{fmt}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""

    await heard(server, (await server.publish(headline="Second")).json()["seq"])
    moved = await server.http.get(f"/blogs/b1/feed.{fmt}", headers={"If-None-Match": tag})
    assert moved.status_code == 200 and moved.headers["etag"] != tag
    assert b"Second" in moved.content


@pytest.mark.parametrize("fmt", ["atom", "rss"])
async def test_feedparser_reads_the_served_feed_newest_first(server: LiveServer, blog: dict[str, Any],
                                                             fmt: str) -> None:
    for minute, headline in enumerate(("One", "Two", "Three")):  # distinct times: posts of one millisecond tie
        await server.publish(headline=headline, published_at=f"2024-03-01T12:0{minute}:00Z")
    parsed = feedparser.parse((await server.http.get(f"/blogs/b1/feed.{fmt}")).content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [entry.title for entry in parsed.entries] == ["Three", "Two", "One"]


async def test_an_edit_keeps_the_entry_and_an_ended_blog_expires_its_json_feed(
        server: LiveServer, blog: dict[str, Any]) -> None:
    post = (await server.publish(headline="Before")).json()["post"]
    before = (await server.http.get("/blogs/b1/feed.json")).json()["items"][0]
    edited = await server.http.patch(f"/api/blogs/b1/posts/{post['id']}", json={"headline": "After"},
                                     headers=server.auth())
    assert edited.status_code == 200
    ended = await server.http.patch("/api/blogs/b1", json={"status": "ended"}, headers=server.auth())
    assert ended.status_code == 200
    await heard(server, ended.json()["seq"])
    feed = (await server.http.get("/blogs/b1/feed.json")).json()
    after = feed["items"][0]
    assert feed["expired"] is True
    assert (after["id"], after["title"]) == (before["id"], "After")
    assert after["date_modified"] > before["date_modified"]


async def test_the_reader_page_links_its_feeds_at_the_public_url(start_server: Any) -> None:
    server: LiveServer = await start_server(public_url="https://news.example")
    await server.create_blog("b1")
    page = (await server.http.get("/blogs/b1", headers={"Host": "evil.example"})).text
    for fmt, media in FORMATS.items():
        assert f'type="{media}"' in page
        assert f'href="https://news.example/blogs/b1/feed.{fmt}"' in page
    feed = (await server.http.get("/blogs/b1/feed.json", headers={"Host": "evil.example"})).json()
    assert feed["feed_url"] == "https://news.example/blogs/b1/feed.json"
    assert "evil.example" not in (await server.http.get("/blogs/b1/feed.atom")).text


async def test_unknown_blogs_and_formats_are_404(server: LiveServer, blog: dict[str, Any]) -> None:
    assert (await server.http.get("/blogs/nope/feed.atom")).status_code == 404
    assert (await server.http.get("/blogs/b1/feed.xml")).status_code == 404
    assert (await server.http.get("/blogs/B!/feed.rss")).status_code == 404
