"""Render the public HTML pages from the JSON API's blog and post dicts.

Pure functions of data to HTML strings, so routes stay thin and tests need no server. The escaping
contract: Jinja autoescapes every value, except a post's body, which the API has already passed through
its HTML allowlist and is inserted as is. The schema.org JSON-LD is the one place text lands inside a
<script> element, where HTML escaping does not apply; script_json() escapes "<", ">" and "&" so no
headline or body can close the element.

The reader page carries the class names and data attributes the live widget takes over (see
templates/blog.html); keep them stable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from server.timefmt import format_stamp, post_count_label

__all__ = [
    "DEFAULT_TIMEZONE",
    "PageRenderer",
    "blog_byline",
    "join_names",
    "live_blog_json_ld",
    "plain_text",
    "script_json",
]

TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
DEFAULT_TIMEZONE: Final = "America/New_York"
ARTICLE_BODY_LIMIT: Final = 500
ORDERS: Final = ("newest", "oldest")

# Tags after which text reads as a new sentence or line, so "<p>a</p><p>b</p>" becomes "a b", not "ab".
_BREAKING_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
        "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
# Captions and credits describe a photo, not the story; search engines get the prose.
_SKIPPED_TAGS: Final = frozenset({"figure", "script", "style", "template"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        if tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # "<br/>" or "<img/>": never opens an element, so it must not count towards _skipping.
        if tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and self._skipping:
            self._skipping -= 1
        if tag in _BREAKING_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def plain_text(html: str, limit: int = ARTICLE_BODY_LIMIT) -> str:
    """The readable text of an HTML fragment: tags dropped, whitespace collapsed, at most *limit* characters.

    Figures (photo captions and credits) are left out. Text cut short ends with an ellipsis, at a word
    boundary when one is near.
    """
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = " ".join("".join(extractor.parts).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def join_names(names: Iterable[str]) -> str:
    """Join names the way a byline does: "A", "A and B", "A, B and C"."""
    clean = [name.strip() for name in names if name.strip()]
    if len(clean) <= 1:
        return "".join(clean)
    return ", ".join(clean[:-1]) + " and " + clean[-1]


def blog_byline(authors: Iterable[str], source: str) -> str:
    """The blog's byline: "By A, B and C, CNN"; "" when there are neither authors nor a source."""
    names = join_names(authors)
    source = source.strip()
    if names and source:
        return f"By {names}, {source}"
    if names or source:
        return f"By {names or source}"
    return ""


def script_json(data: Any) -> str:
    """Serialize *data* as JSON that is safe to place verbatim inside an HTML <script> element.

    "<", ">" and "&" become JSON unicode escapes, so "</script>" or "<!--" in any string cannot end or
    alter the element; U+2028/U+2029 are escaped for older JavaScript parsers. The result still parses
    as the same JSON.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def live_blog_json_ld(blog: Mapping[str, Any], posts: Sequence[Mapping[str, Any]], page_url: str) -> dict[str, Any]:
    """schema.org LiveBlogPosting for *blog*, with one BlogPosting per post in *posts*."""
    title = str(blog["title"])
    description = str(blog.get("description") or "")
    source = str(blog.get("source") or "").strip()
    authors = [{"@type": "Person", "name": name} for name in blog.get("authors") or () if str(name).strip()]
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": title,
        "description": description or title,
        "url": page_url,
        "mainEntityOfPage": page_url,
        "datePublished": blog["created_at"],
        "dateModified": blog["updated_at"],
        "coverageStartTime": blog["created_at"],
    }
    if blog.get("status") == "ended":
        data["coverageEndTime"] = blog["updated_at"]
    if authors:
        data["author"] = authors
    if source:
        data["publisher"] = {"@type": "Organization", "name": source}
    data["liveBlogUpdate"] = [
        {
            "@type": "BlogPosting",
            "headline": post["headline"],
            "datePublished": post["published_at"],
            "dateModified": post.get("updated_at") or post["published_at"],
            "url": f"{page_url}#post-{post['id']}",
            "articleBody": plain_text(str(post.get("body") or "")),
        }
        for post in posts
    ]
    return data


class PageRenderer:
    """Renders the public pages. Build one at start-up and share it: templates compile once, rendering is
    thread-safe, and no method touches I/O beyond the first load of each template.

    Every method takes `asset_base`, the URL prefix under which client_demo/ is served as `/client/`
    ("" for the same origin, so the stylesheet is `/client/livepush.css`). With an *asset_version*
    (server.pages.assets: a hash of client_demo/), pages link `/client/v/<version>/...` instead: URLs
    that change with every deploy that changes an asset, so assets can be cached for a year.
    """

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, asset_version: str = "") -> None:
        self._client = f"/client/v/{asset_version}" if asset_version else "/client"
        self._env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def _render(self, name: str, *, asset_base: str, **context: Any) -> str:
        return self._env.get_template(name).render(client=asset_base.rstrip("/") + self._client, **context)

    def index(self, blogs: Sequence[Mapping[str, Any]], *, next_url: str | None = None, first: bool = True,
              asset_base: str = "") -> str:
        """One page of the list of blogs, each linking to its reader page. *next_url* links the following
        page; a page that is not the *first* links back to the first."""
        items = [
            {
                "id": blog["id"],
                "url": f"/blogs/{quote(str(blog['id']), safe='')}",
                "title": blog["title"],
                "description": blog.get("description") or "",
                "count": post_count_label(int(blog.get("post_count") or 0)),
                "updated_at": blog["updated_at"],
                "updated": format_stamp(blog["updated_at"], blog.get("timezone") or DEFAULT_TIMEZONE),
                "ended": blog.get("status") == "ended",
            }
            for blog in blogs
        ]
        pages = {"first": None if first else "/", "next": next_url}
        return self._render("index.html", asset_base=asset_base, blogs=items, pages=pages)

    def blog(
        self,
        blog: Mapping[str, Any],
        posts: Sequence[Mapping[str, Any]],
        *,
        next_cursor: str | None,
        page_url: str,
        order: str = "newest",
        asset_base: str = "",
    ) -> str:
        """The reader page of *blog* showing *posts* in the order given (the caller sorts and paginates).

        *page_url* is the page's absolute canonical URL (used for rel=canonical and the JSON-LD);
        *next_cursor* is the API's `next` cursor, rendered as a "Load more posts" link when set;
        *order* is "newest" or "oldest" (anything else is treated as "newest").
        """
        if order not in ORDERS:
            order = "newest"
        tz_name = str(blog.get("timezone") or DEFAULT_TIMEZONE)
        blog_path = f"/blogs/{quote(str(blog['id']), safe='')}"
        more_url = f"{blog_path}?before={quote(next_cursor, safe='')}&order={order}" if next_cursor else None
        view = {
            "id": blog["id"],
            "title": blog["title"],
            "description": blog.get("description") or "",
            "byline": blog_byline(blog.get("authors") or (), str(blog.get("source") or "")),
            "timezone": tz_name,
            "seq": blog.get("seq", 0),
            "epoch": blog.get("epoch", ""),
            "status": blog.get("status", "live"),
            "ended": blog.get("status") == "ended",
            "updated_at": blog["updated_at"],
            "updated": format_stamp(blog["updated_at"], tz_name),
            "count": post_count_label(int(blog.get("post_count", len(posts)))),
        }
        post_views = [
            {
                "id": post["id"],
                "version": post.get("version", 1),
                "published_at": post["published_at"],
                "stamp": format_stamp(post["published_at"], tz_name),
                "headline": post["headline"],
                "byline": post.get("byline") or "",
                "body": post.get("body") or "",
                "correction": post.get("correction") or "",
                "pinned": bool(post.get("pinned")),
                "key_event": bool(post.get("key_event")),
            }
            for post in posts
        ]
        return self._render(
            "blog.html",
            asset_base=asset_base,
            blog=view,
            posts=post_views,
            order=order,
            more_url=more_url,
            page_url=page_url,
            meta_description=view["description"] or f"Live updates: {view['title']}",
            json_ld=script_json(live_blog_json_ld(blog, posts, page_url)),
        )

    def newsroom(self, *, asset_base: str = "") -> str:
        """The newsroom console: static markup that client_demo/newsroom.js brings to life."""
        return self._render("newsroom.html", asset_base=asset_base)

    def not_found(self, what: str, *, asset_base: str = "") -> str:
        """A small 404 page; *what* names the missing thing, e.g. 'the live blog "foo"'."""
        return self._render("not_found.html", asset_base=asset_base, what=what)
