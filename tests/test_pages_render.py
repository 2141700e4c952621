"""Unit tests for the server-rendered pages and their time stamps (no server, no I/O beyond templates)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from server.pages.render import PageRenderer, blog_byline, plain_text, script_json
from server.timefmt import format_stamp, parse_utc, post_count_label

SEED_BYLINE = "By Chris Lau, Sophie Tanno, Hannah Strange, Adrienne Vogt, Elise Hammond and Tori B. Powell, CNN"
PAGE_URL = "https://news.example/blogs/russia-ukraine-2023-07-26"
XSS = "</script><script>alert(1)</script>"


def make_blog(**overrides: Any) -> dict[str, Any]:
    blog: dict[str, Any] = {
        "id": "russia-ukraine-2023-07-26",
        "title": "July 26, 2023 - Russia-Ukraine news",
        "description": "",
        "authors": ["Chris Lau", "Sophie Tanno", "Hannah Strange", "Adrienne Vogt", "Elise Hammond", "Tori B. Powell"],
        "source": "CNN",
        "timezone": "America/New_York",
        "status": "live",
        "created_at": "2023-07-25T23:00:00Z",
        "updated_at": "2023-07-27T04:43:00Z",
        "post_count": 9,
        "seq": 12,
        "epoch": "e-1",
    }
    blog.update(overrides)
    return blog


def make_post(post_id: str = "p1", **overrides: Any) -> dict[str, Any]:
    post: dict[str, Any] = {
        "id": post_id,
        "headline": "Russia, North Korea defense ministries to strengthen ties after Pyongyang talks",
        "byline": "From CNN's Mihir Melwani and Anna Chernova",
        "body": "<p>Russian Defense Minister Sergei Shoigu expressed his intention.</p>",
        "published_at": "2023-07-26T10:34:00.123Z",
        "updated_at": "2023-07-26T10:34:00.123Z",
        "pinned": False,
        "key_event": False,
        "correction": "",
        "version": 1,
    }
    post.update(overrides)
    return post


@pytest.fixture(scope="module")
def renderer() -> PageRenderer:
    return PageRenderer()


def render_blog(
    renderer: PageRenderer,
    blog: dict[str, Any] | None = None,
    posts: list[dict[str, Any]] | None = None,
    *,
    next_cursor: str | None = None,
    order: str = "newest",
) -> str:
    return renderer.blog(
        blog if blog is not None else make_blog(),
        posts if posts is not None else [make_post()],
        next_cursor=next_cursor,
        page_url=PAGE_URL,
        order=order,
    )


class _ScriptCollector(HTMLParser):
    """Collects the text of each <script type="application/ld+json"> the way a browser tokenizes it."""

    def __init__(self) -> None:
        super().__init__()
        self.json_ld: list[str] = []
        self.scripts = 0
        self._in_json_ld = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
            self._in_json_ld = ("type", "application/ld+json") in attrs
            if self._in_json_ld:
                self.json_ld.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json_ld = False

    def handle_data(self, data: str) -> None:
        if self._in_json_ld:
            self.json_ld[-1] += data


def json_ld_of(page: str) -> dict[str, Any]:
    collector = _ScriptCollector()
    collector.feed(page)
    assert len(collector.json_ld) == 1
    data: dict[str, Any] = json.loads(collector.json_ld[0])
    return data


# ---- time stamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "tz_name", "expected"),
    [
        ("2023-07-27T04:43:00Z", "America/New_York", "12:43 a.m. ET, July 27, 2023"),
        ("2023-07-26T00:34:00Z", "America/New_York", "8:34 p.m. ET, July 25, 2023"),
        ("2023-07-26T10:34:00.123Z", "America/New_York", "6:34 a.m. ET, July 26, 2023"),
        ("2023-07-26T16:00:00Z", "America/New_York", "12:00 p.m. ET, July 26, 2023"),
        ("2023-01-15T05:07:00Z", "America/New_York", "12:07 a.m. ET, January 15, 2023"),
        ("2023-01-15T17:00:00Z", "America/New_York", "12:00 p.m. ET, January 15, 2023"),
        ("2023-07-26T10:34:00Z", "America/Los_Angeles", "3:34 a.m. PT, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "America/Phoenix", "3:34 a.m. MT, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "Pacific/Honolulu", "12:34 a.m. HT, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "Europe/London", "11:34 a.m. BST, July 26, 2023"),
        ("2023-01-26T10:34:00Z", "Europe/London", "10:34 a.m. GMT, January 26, 2023"),
        ("2023-07-26T10:34:00Z", "Europe/Paris", "12:34 p.m. CEST, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "UTC", "10:34 a.m. UTC, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "Asia/Dubai", "2:34 p.m. GMT+4, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "Asia/Kathmandu", "4:19 p.m. GMT+5:45, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "America/Sao_Paulo", "7:34 a.m. GMT-3, July 26, 2023"),
        ("2023-07-26T10:34:00Z", "Not/AZone", "10:34 a.m. UTC, July 26, 2023"),
    ],
)
def test_format_stamp_uses_the_live_blog_house_style(moment: str, tz_name: str, expected: str) -> None:
    """Hour without a leading zero, a.m./p.m., a newsroom zone label, full month name."""
    assert format_stamp(moment, tz_name) == expected


def test_format_stamp_accepts_datetimes() -> None:
    """An aware datetime formats like its RFC 3339 string; a naive one is taken as UTC."""
    aware = datetime(2023, 7, 27, 4, 43, tzinfo=UTC)
    assert format_stamp(aware, "America/New_York") == "12:43 a.m. ET, July 27, 2023"
    assert format_stamp(aware.replace(tzinfo=None), "America/New_York") == "12:43 a.m. ET, July 27, 2023"


def test_parse_utc_returns_aware_utc() -> None:
    """Z, milliseconds and explicit offsets all come back as aware UTC datetimes."""
    assert parse_utc("2023-07-26T10:34:00.123Z") == datetime(2023, 7, 26, 10, 34, 0, 123000, tzinfo=UTC)
    moved = parse_utc("2023-07-26T12:34:00+02:00")
    assert moved.utcoffset() is not None
    assert moved == datetime(2023, 7, 26, 10, 34, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_utc("yesterday")


def test_post_count_label_is_singular_only_for_one() -> None:
    assert [post_count_label(n) for n in (0, 1, 9)] == ["0 Posts", "1 Post", "9 Posts"]


# ---- helpers ----------------------------------------------------------------------------------------------


def test_blog_byline_joins_names_like_a_newsroom() -> None:
    assert blog_byline(["A"], "") == "By A"
    assert blog_byline(["A", "B"], "CNN") == "By A and B, CNN"
    assert blog_byline([], "CNN") == "By CNN"
    assert blog_byline([], "") == ""


def test_plain_text_strips_tags_collapses_space_and_caps_length() -> None:
    """Block boundaries become spaces, figures are dropped, entities decode, and long text ends in an ellipsis."""
    html = "<figure><img src='x.jpg' alt=''><figcaption>Caption</figcaption></figure><p>One&nbsp;two</p>\n<p>three</p>"
    assert plain_text(html) == "One two three"
    long = plain_text("<p>" + "word " * 200 + "</p>")
    assert len(long) <= 500
    assert long.endswith("word…")


def test_script_json_cannot_close_a_script_element() -> None:
    encoded = script_json({"a": XSS + "<!-- & -->"})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert json.loads(encoded) == {"a": XSS + "<!-- & -->"}


# ---- the reader page --------------------------------------------------------------------------------------


def test_blog_page_header_matches_the_seed(renderer: PageRenderer) -> None:
    """The header reads exactly like the CNN page the project reproduces."""
    page = render_blog(renderer)
    assert '<h1 class="lp-title">July 26, 2023 - Russia-Ukraine news</h1>' in page
    assert f'<p class="lp-byline">{SEED_BYLINE}</p>' in page
    assert (
        '<p class="lp-updated">Updated <time datetime="2023-07-27T04:43:00Z">12:43 a.m. ET, July 27, 2023</time></p>'
        in page
    )
    assert '<p class="lp-count">9 Posts</p>' in page
    assert page.count("<h1") == 1
    assert '<html lang="en">' in page
    assert '<meta name="viewport"' in page


def test_blog_page_carries_the_widget_hooks(renderer: PageRenderer) -> None:
    page = render_blog(renderer, posts=[make_post(pinned=True, key_event=True, version=3)], order="oldest")
    assert (
        '<main class="lp-blog" data-blog="russia-ukraine-2023-07-26" data-seq="12" data-epoch="e-1"'
        ' data-timezone="America/New_York" data-order="oldest"'
    ) in page
    assert '<div class="lp-live" role="status" aria-live="polite"></div>' in page
    assert '<div class="lp-posts" role="feed" aria-busy="false">' in page
    assert (
        '<article class="lp-post" id="post-p1" data-id="p1" data-version="3"'
        ' data-published="2023-07-26T10:34:00.123Z" aria-labelledby="post-p1-h">'
    ) in page
    assert '<p class="lp-flags"><span class="lp-pinned">Pinned</span> <span class="lp-key">Key event</span></p>' in page
    assert (
        '<a class="lp-post-time" href="#post-p1"><time datetime="2023-07-26T10:34:00.123Z">'
        "6:34 a.m. ET, July 26, 2023</time></a>"
    ) in page
    assert '<h2 class="lp-headline" id="post-p1-h">' in page
    assert '<div class="lp-body"><p>Russian Defense Minister Sergei Shoigu expressed his intention.</p></div>' in page
    assert (
        '<nav class="lp-sort" aria-label="Sort posts">Sort by <a href="?order=newest" aria-current="false">'
        'Newest first</a> <a href="?order=oldest" aria-current="true">Oldest first</a></nav>'
    ) in page
    assert '<link rel="stylesheet" href="/client/livepush.css">' in page
    assert f'<link rel="canonical" href="{PAGE_URL}">' in page
    assert (
        '<script type="module" src="/client/widget.js" data-livepush-blog="russia-ukraine-2023-07-26"></script>' in page
    )


def test_post_parts_appear_in_reading_order(renderer: PageRenderer) -> None:
    article = render_blog(renderer, posts=[make_post(key_event=True, correction="Fixed a name.")])
    hooks = ["lp-flags", "lp-post-time", "lp-headline", "lp-post-byline", "lp-body", "lp-correction"]
    positions = [article.index(f'class="{hook}"') for hook in hooks]
    assert positions == sorted(positions)
    assert '<p class="lp-correction"><strong>Correction:</strong> Fixed a name.</p>' in article


def test_unflagged_post_has_no_flags_and_no_correction(renderer: PageRenderer) -> None:
    page = render_blog(renderer)
    assert "lp-flags" not in page.split('class="lp-posts"')[1]
    assert 'class="lp-correction"' not in page


def test_hostile_text_is_escaped_and_cannot_break_the_json_ld(renderer: PageRenderer) -> None:
    """Headline, byline and correction are plain text: escaped in HTML and neutralized inside the JSON-LD."""
    hostile = make_post(headline=XSS, byline=XSS, correction=XSS, body="<p>" + XSS.replace("<", "&lt;") + "</p>")
    page = render_blog(renderer, blog=make_blog(title=XSS, description=XSS), posts=[hostile])
    assert "</script><script>alert" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    collector = _ScriptCollector()
    collector.feed(page)
    # The JSON-LD block and the widget module: nothing the author typed opened another script.
    assert collector.scripts == 2
    data = json_ld_of(page)
    assert data["headline"] == XSS
    assert data["liveBlogUpdate"][0]["headline"] == XSS
    assert data["liveBlogUpdate"][0]["articleBody"] == XSS


def test_json_ld_describes_a_live_blog_posting(renderer: PageRenderer) -> None:
    posts = [make_post("a"), make_post("b", body="<p>Second&nbsp;<em>post</em></p>"), make_post("c")]
    data = json_ld_of(render_blog(renderer, posts=posts))
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "LiveBlogPosting"
    assert data["url"] == PAGE_URL
    assert data["datePublished"] == data["coverageStartTime"] == "2023-07-25T23:00:00Z"
    assert data["dateModified"] == "2023-07-27T04:43:00Z"
    assert "coverageEndTime" not in data
    assert data["publisher"] == {"@type": "Organization", "name": "CNN"}
    assert [a["name"] for a in data["author"]][-1] == "Tori B. Powell"
    assert all(a["@type"] == "Person" for a in data["author"])
    updates = data["liveBlogUpdate"]
    assert len(updates) == len(posts)
    assert {u["@type"] for u in updates} == {"BlogPosting"}
    assert updates[1]["url"] == PAGE_URL + "#post-b"
    assert updates[1]["articleBody"] == "Second post"


def test_json_ld_of_an_ended_blog_has_a_coverage_end(renderer: PageRenderer) -> None:
    data = json_ld_of(render_blog(renderer, blog=make_blog(status="ended", source="")))
    assert data["coverageEndTime"] == "2023-07-27T04:43:00Z"
    assert "publisher" not in data


def test_load_more_link_iff_next_cursor(renderer: PageRenderer) -> None:
    """The cursor is URL-encoded, and the link keeps the chosen order."""
    with_more = render_blog(renderer, next_cursor="c/1+2=", order="oldest")
    assert (
        '<a class="lp-more" href="/blogs/russia-ukraine-2023-07-26?before=c%2F1%2B2%3D&amp;order=oldest"'
        ' rel="next">Load more posts</a>'
    ) in with_more
    assert "Load more posts" not in render_blog(renderer, next_cursor=None)


def test_ended_badge_iff_ended(renderer: PageRenderer) -> None:
    badge = '<p class="lp-status">This live blog has ended.</p>'
    assert badge in render_blog(renderer, blog=make_blog(status="ended"))
    assert badge not in render_blog(renderer)
    assert "lp-status" not in render_blog(renderer)


def test_empty_post_byline_is_omitted(renderer: PageRenderer) -> None:
    page = render_blog(renderer, posts=[make_post(byline="")])
    assert "lp-post-byline" not in page
    assert "lp-post-byline" in render_blog(renderer)


def test_unknown_order_falls_back_to_newest(renderer: PageRenderer) -> None:
    page = render_blog(renderer, order="sideways")
    assert 'data-order="newest"' in page
    assert '<a href="?order=newest" aria-current="true">' in page


def test_blog_without_posts_says_so(renderer: PageRenderer) -> None:
    page = render_blog(renderer, blog=make_blog(post_count=0), posts=[])
    assert '<p class="lp-count">0 Posts</p>' in page
    assert "No posts yet" in page
    assert json_ld_of(page)["liveBlogUpdate"] == []


def test_asset_base_prefixes_the_stylesheet_and_widget(renderer: PageRenderer) -> None:
    page = renderer.blog(make_blog(), [], next_cursor=None, page_url=PAGE_URL, asset_base="https://cdn.example/")
    assert '<link rel="stylesheet" href="https://cdn.example/client/livepush.css">' in page
    assert 'src="https://cdn.example/client/widget.js"' in page


# ---- the other pages --------------------------------------------------------------------------------------


def test_index_lists_blogs_with_counts_stamps_and_status(renderer: PageRenderer) -> None:
    page = renderer.index([make_blog(), make_blog(id="other", title="Other <b>blog</b>", status="ended", post_count=1)])
    assert '<a href="/blogs/russia-ukraine-2023-07-26">July 26, 2023 - Russia-Ukraine news</a>' in page
    assert "Other &lt;b&gt;blog&lt;/b&gt;" in page
    assert "9 Posts" in page and "1 Post<" in page
    assert "12:43 a.m. ET, July 27, 2023" in page
    assert "Live</span>" in page and "Ended</span>" in page
    assert page.count("<h1") == 1


def test_index_without_blogs(renderer: PageRenderer) -> None:
    assert "No live blogs yet." in renderer.index([])


def test_newsroom_placeholder_links_to_the_api_description(renderer: PageRenderer) -> None:
    page = renderer.newsroom()
    assert "<title>Newsroom console</title>" in page
    assert '<a href="/openapi.json">' in page
    assert "docs/" in page


def test_not_found_names_the_missing_thing_escaped(renderer: PageRenderer) -> None:
    page = renderer.not_found('the live blog "<x>"')
    assert "the live blog &#34;&lt;x&gt;&#34;" in page
    assert re.search(r"<h1[^>]*>Not found</h1>", page)
