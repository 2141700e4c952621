"""Feeds as third-party readers see them: feedparser for Atom and RSS, the JSON Feed 1.1 schema for JSON Feed.

The schema is the npm package `jsonfeed-schema` (installed into tests/js by scripts/test), checked here with
the `jsonschema` validator, so neither the parser nor the schema was written by this team.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import orjson
import pytest

from server import wire
from server.demo import demo_data
from server.pages.feeds import FeedFormat, newest_first, render_feed

BASE = "https://news.example"
SCHEMA = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "jsonfeed-schema" / "schema-v1.1.json"
EVERY_ELEMENT = (
    '<h3>Heading</h3><h4>Sub</h4><p>Text with <strong>bold</strong>, <em>em</em> and '
    '<a href="https://example.org/x">a link</a> and <a href="/blogs/other">a local link</a>.</p>'
    "<ul><li>one</li></ul><ol><li>two</li></ol><blockquote><p>quote</p></blockquote>"
    '<figure><img src="/static/demo/x.svg" alt="alt" width="10" height="10">'
    '<figcaption>Caption <span class="credit">Credit</span></figcaption></figure>'
    '<aside class="context"><p>Some context:</p></aside>'
)


def demo() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    blog, posts = demo_data()
    return wire.blog_json(blog), [dict(p) for p in newest_first([wire.post_json(post) for post in posts])]


def parse(fmt: FeedFormat, blog: dict[str, Any], posts: list[dict[str, Any]]) -> Any:
    parsed = feedparser.parse(render_feed(fmt, blog, posts, BASE))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def json_feed(blog: dict[str, Any], posts: list[dict[str, Any]]) -> dict[str, Any]:
    feed: dict[str, Any] = orjson.loads(render_feed("json", blog, posts, BASE))
    jsonschema.validate(feed, json.loads(SCHEMA.read_text()))
    return feed


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_the_demo_blog_parses_cleanly_with_every_post_newest_first(fmt: FeedFormat) -> None:
    blog, posts = demo()
    parsed = parse(fmt, blog, posts)
    assert parsed.version == {"atom": "atom10", "rss": "rss20"}[fmt]
    assert parsed.feed.title == blog["title"]
    assert parsed.feed.link == f"{BASE}/blogs/{blog['id']}"
    assert [entry.id for entry in parsed.entries] == [f"{BASE}/blogs/{blog['id']}#post-{p['id']}" for p in posts]
    assert [entry.title for entry in parsed.entries] == [p["headline"] for p in posts]


def test_the_demo_blog_is_a_valid_json_feed() -> None:
    blog, posts = demo()
    feed = json_feed(blog, posts)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["expired"] is False
    assert [item["title"] for item in feed["items"]] == [p["headline"] for p in posts]
    assert [a["name"] for a in feed["authors"]] == blog["authors"]


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_an_edit_keeps_the_entry_id_and_moves_its_updated_time(fmt: FeedFormat) -> None:
    blog, posts = demo()
    before = _entries(fmt, blog, posts)[0]
    posts[0] = {**posts[0], "headline": "Edited", "updated_at": "2023-07-27T05:00:00Z", "version": 2}
    after = _entries(fmt, blog, posts)[0]
    assert after["id"] == before["id"]
    assert after["title"] == "Edited"
    assert after["updated"] != before["updated"]
    assert after["updated"].startswith("2023-07-27T05:00:00")


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_a_deleted_post_leaves_the_feed(fmt: FeedFormat) -> None:
    blog, posts = demo()
    gone = posts.pop(1)
    ids = [entry["id"] for entry in _entries(fmt, blog, posts)]
    assert len(ids) == len(posts)
    assert not any(i.endswith(f"#post-{gone['id']}") for i in ids)


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_corrections_and_key_events_are_categories_and_the_correction_leads_the_content(fmt: FeedFormat) -> None:
    blog, posts = demo()
    posts[0] = {**posts[0], "key_event": True, "correction": "An earlier version <misspelled> a name."}
    first, second = _entries(fmt, blog, posts)[:2]
    assert {"key-event", "correction"} <= set(first["tags"])
    assert first["content"].startswith("<p><strong>Correction:</strong> An earlier version &lt;misspelled&gt;")
    assert second["tags"] == []


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_every_allowed_element_survives_with_absolute_urls(fmt: FeedFormat) -> None:
    blog, posts = demo()
    posts[0] = {**posts[0], "body": EVERY_ELEMENT}
    content = _entries(fmt, blog, posts)[0]["content"]
    for tag in ("<h3>", "<h4>", "<strong>", "<em>", "<ul>", "<ol>", "<blockquote>", "<figure>", "<figcaption>"):
        assert tag in content
    assert f'src="{BASE}/static/demo/x.svg"' in content
    assert f'href="{BASE}/blogs/other"' in content
    assert 'href="https://example.org/x"' in content


def test_an_ended_blog_is_expired_in_json_feed_and_says_so_in_atom_and_rss() -> None:
    blog, posts = demo()
    blog["status"] = "ended"
    assert json_feed(blog, posts)["expired"] is True
    assert parse("atom", blog, posts).feed.subtitle.endswith("This live blog has ended.")
    assert parse("rss", blog, posts).feed.description.endswith("This live blog has ended.")


def test_an_empty_blog_is_a_valid_feed_in_every_format() -> None:
    blog, _ = demo()
    assert parse("atom", blog, []).entries == []
    assert parse("rss", blog, []).entries == []
    assert json_feed(blog, [])["items"] == []


def _entries(fmt: FeedFormat, blog: dict[str, Any], posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry as {id, title, updated, tags, content}, read back by the format's own reader."""
    if fmt == "json":
        return [
            {"id": item["id"], "title": item["title"], "updated": item["date_modified"],
             "tags": item.get("tags", []), "content": item["content_html"]}
            for item in json_feed(blog, posts)["items"]
        ]
    return [
        {"id": entry.id, "title": entry.title, "updated": _iso(entry), "tags": [t.term for t in entry.get("tags", [])],
         "content": entry.content[0].value}
        for entry in parse(fmt, blog, posts).entries
    ]


def _iso(entry: Any) -> str:
    """The entry's updated time as ISO 8601 (feedparser keeps the format's own text)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", entry.updated_parsed)
