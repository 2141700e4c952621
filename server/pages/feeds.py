"""Render a blog as a syndication feed: Atom (RFC 4287), RSS 2.0 and JSON Feed 1.1.

Pure functions of the API's blog and post dicts to bytes, like render.py for pages. Atom and RSS are
written by feedgen; JSON Feed is plain JSON. What every format shares:

- an entry's id is the post's permalink (`<public url>/blogs/<blog>#post-<id>`), so it never changes
  with an edit, and its updated time is the post's `updated_at`, which moves with each edit;
- key events and corrections are categories (Atom `<category>`, RSS `<category>`, JSON Feed `tags`),
  which every feed reader lists; a correction's text also leads the entry's content, so readers that
  show only content see it;
- content is the post's body as stored, which the API has already passed through its HTML allowlist;
  its site-relative URLs (images, links) are made absolute, since a feed reader has no base URL;
- an ended blog is `expired: true` in JSON Feed and says so in the Atom subtitle and RSS description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from feedgen.feed import FeedGenerator

FeedFormat = Literal["atom", "rss", "json"]
FORMATS: Final[Mapping[FeedFormat, str]] = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
FEED_SIZE: Final = 50
JSON_FEED_VERSION: Final = "https://jsonfeed.org/version/1.1"
KEY_EVENT: Final = "key-event"
CORRECTION: Final = "correction"
ENDED_NOTE: Final = "This live blog has ended."

# A site-relative URL in a sanitized body: `src="/…"` or `href="/…"`, never `//host` (protocol-relative).
_RELATIVE_URL = re.compile(r'(\s(?:src|href)=")/(?!/)')


def feed_format(name: str) -> FeedFormat | None:
    """The format named by a feed URL's extension (`atom`, `rss`, `json`), or None."""
    return next((fmt for fmt in FORMATS if fmt == name), None)


def feed_url(base_url: str, blog_id: str, fmt: FeedFormat) -> str:
    return f"{base_url}/blogs/{blog_id}/feed.{fmt}"


def render_feed(fmt: FeedFormat, blog: Mapping[str, Any], posts: Sequence[Mapping[str, Any]], base_url: str) -> bytes:
    """The feed of *blog* in *fmt*, with *posts* (the newest first) and absolute URLs under *base_url*."""
    entries = [_Entry(post, blog, base_url) for post in posts]
    if fmt == "json":
        return _json_feed(blog, entries, base_url)
    return _xml_feed(fmt, blog, entries, base_url)


def newest_first(posts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """*posts* by `published_at`, the newest first: a feed has no pinned posts, only time."""
    return sorted(posts, key=lambda post: (str(post["published_at"]), str(post["id"])), reverse=True)


class _Entry:
    """One post as every format needs it."""

    __slots__ = ("authors", "categories", "content", "headline", "id", "published", "summary", "updated")

    def __init__(self, post: Mapping[str, Any], blog: Mapping[str, Any], base_url: str) -> None:
        self.id = f"{base_url}/blogs/{blog['id']}#post-{post['id']}"
        self.headline = str(post["headline"])
        self.published = str(post["published_at"])
        self.updated = str(post.get("updated_at") or post["published_at"])
        byline = str(post.get("byline") or "").strip()
        self.authors = [byline] if byline else []
        correction = str(post.get("correction") or "").strip()
        self.categories = [name for name, on in ((KEY_EVENT, post.get("key_event")), (CORRECTION, correction)) if on]
        body = _RELATIVE_URL.sub(rf"\1{base_url}/", str(post.get("body") or ""))
        self.content = (f"<p><strong>Correction:</strong> {_escape(correction)}</p>" if correction else "") + body
        self.summary = correction


def _xml_feed(fmt: Literal["atom", "rss"], blog: Mapping[str, Any], entries: Sequence[_Entry], base_url: str) -> bytes:
    page_url = f"{base_url}/blogs/{blog['id']}"
    generator = FeedGenerator()
    if fmt == "rss":
        generator.load_extension("dc")
    generator.id(page_url)
    generator.title(str(blog["title"]))
    # feedgen makes RSS's channel <link> of the last link given: the page, not the feed itself.
    generator.link(href=feed_url(base_url, str(blog["id"]), fmt), rel="self")
    generator.link(href=page_url, rel="alternate", type="text/html")
    generator.updated(_time(str(blog["updated_at"])))
    generator.language("en")
    generator.generator("livepush")
    if fmt == "atom":
        generator.subtitle(_description(blog))
    else:
        generator.description(_description(blog))
    for name in _blog_authors(blog):
        generator.author({"name": name})
    # feedgen prepends by default; append keeps the caller's order (newest first).
    for entry in entries:
        item = generator.add_entry(order="append")
        item.id(entry.id)
        item.guid(entry.id, permalink=True)
        item.title(entry.headline)
        item.link(href=entry.id, rel="alternate", type="text/html")
        item.published(_time(entry.published))
        item.updated(_time(entry.updated))
        item.content(entry.content, type="html")
        if fmt == "atom":
            for name in entry.authors:
                item.author({"name": name})
        else:
            item.description(entry.content)
            item.dc.dc_date(entry.updated)  # RSS has no modified date of its own; readers take dc:date
            for name in entry.authors:
                item.dc.dc_creator(name)
        for term in entry.categories:
            item.category(term=term)
    rendered: bytes = generator.atom_str(pretty=False) if fmt == "atom" else generator.rss_str(pretty=False)
    return rendered


def _json_feed(blog: Mapping[str, Any], entries: Sequence[_Entry], base_url: str) -> bytes:
    page_url = f"{base_url}/blogs/{blog['id']}"
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": str(blog["title"]),
        "home_page_url": page_url,
        "feed_url": feed_url(base_url, str(blog["id"]), "json"),
        "description": _description(blog),
        "language": "en",
        "authors": [{"name": name} for name in _blog_authors(blog)],
        "expired": blog.get("status") == "ended",
        "items": [_json_item(entry) for entry in entries],
    }
    return orjson.dumps(feed)


def _json_item(entry: _Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.id,
        "title": entry.headline,
        "content_html": entry.content,
        "date_published": entry.published,
        "date_modified": entry.updated,
    }
    if entry.summary:
        item["summary"] = f"Correction: {entry.summary}"
    if entry.authors:
        item["authors"] = [{"name": name} for name in entry.authors]
    if entry.categories:
        item["tags"] = entry.categories
    return item


def _blog_authors(blog: Mapping[str, Any]) -> list[str]:
    names = [str(name).strip() for name in blog.get("authors") or () if str(name).strip()]
    return names or [str(blog.get("source") or "").strip() or str(blog["title"])]


def _description(blog: Mapping[str, Any]) -> str:
    text = str(blog.get("description") or "").strip() or str(blog["title"])
    return f"{text} {ENDED_NOTE}" if blog.get("status") == "ended" else text


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
