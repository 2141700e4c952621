"""Routes of the public pages: the blog list, a blog's reader page, and the newsroom console.

Reader pages come from the page cache (server.cache): rendered once per blog state and variant,
served with a strong ETag and CDN Cache-Control; current hits never reach this module (see
server.pages.fastpath). The index and the console are rendered per request and carry only
validators (an ETag of their bytes, `Cache-Control: no-cache`). Absolute URLs use the configured
public base URL, never the request's Host.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server import wire
from server.cache import Rendered, consistent_read
from server.engine import BlogNotFound
from server.model import Blog, is_slug
from server.pages.fastpath import page_key
from server.pages.feeds import FEED_SIZE, FORMATS, feed_format, newest_first, render_feed
from server.paging import BadCursor, Order, Page, decode_cursor
from server.responses import cached_response, validated
from server.services import Services, services

HTML = b"text/html; charset=utf-8"


async def index(request: Request) -> Response:
    svc = services(request)
    after = request.query_params.get("after") or None
    try:
        page = await svc.engine.list_blogs(svc.settings.index_page_size, after, order="updated")
    except BadCursor:
        after, page = None, await svc.engine.list_blogs(svc.settings.index_page_size, None, order="updated")
    next_url = f"/?after={quote(page.next, safe='')}" if page.next else None
    html = svc.pages.index([wire.blog_json(blog) for blog in page.blogs], next_url=next_url, first=after is None)
    return validated(request, html.encode(), HTML)


async def blog_page(request: Request) -> Response:
    svc = services(request)
    blog_id: str = request.path_params["blog"]
    if not is_slug(blog_id):
        return _not_found(svc, f"the live blog {blog_id!r}")
    key = page_key(blog_id, request.scope["query_string"])
    order: Order = "oldest" if key[2] == "oldest" else "newest"
    try:
        before = decode_cursor(key[3]) if key[3] else None
    except BadCursor:
        before, key = None, (key[0], key[1], key[2], "")

    async def load() -> Rendered:
        if order == "newest" and before is None:
            # One read for blog and posts, so the page's data-seq matches exactly what it shows.
            snap = await svc.engine.snapshot(blog_id, svc.settings.snapshot_size)
            return _render(svc, snap.blog, snap.page, order, consistent=True)
        blog, page, consistent = await consistent_read(
            svc.engine, blog_id, lambda: svc.engine.list_posts(blog_id, svc.settings.snapshot_size, order, before))
        return _render(svc, blog, page, order, consistent=consistent)

    try:
        entry = await svc.page_cache.get(key, load, front=before is None)
    except BlogNotFound:
        return _not_found(svc, f"the live blog {blog_id!r}")
    return cached_response(request, entry)


def _render(svc: Services, blog: Blog, page: Page, order: Order, *, consistent: bool) -> Rendered:
    page_url = f"{svc.settings.base_url}/blogs/{blog.id}"
    posts = [wire.post_json(post) for post in page.posts]
    html = svc.pages.blog(wire.blog_json(blog), posts, next_cursor=page.next, page_url=page_url, order=order)
    return Rendered(blog.id, blog.epoch, blog.seq, html.encode(), HTML, consistent)


async def feed(request: Request) -> Response:
    """A blog's feed (Atom, RSS or JSON Feed) from the page cache: rendered once per blog state."""
    svc = services(request)
    blog_id: str = request.path_params["blog"]
    fmt = feed_format(request.path_params["format"])
    if not is_slug(blog_id) or fmt is None:
        return _not_found(svc, f"the feed of {blog_id!r}")

    async def load() -> Rendered:
        blog, page, consistent = await consistent_read(
            svc.engine, blog_id, lambda: svc.engine.list_posts(blog_id, FEED_SIZE, "newest", None))
        posts = newest_first([wire.post_json(post) for post in page.posts])
        body = render_feed(fmt, wire.blog_json(blog), posts, svc.settings.base_url)
        return Rendered(blog.id, blog.epoch, blog.seq, body, FORMATS[fmt].encode(), consistent)

    try:
        entry = await svc.page_cache.get((f"feed.{fmt}", blog_id, "", ""), load, front=True)
    except BlogNotFound:
        return _not_found(svc, f"the live blog {blog_id!r}")
    return cached_response(request, entry)


async def newsroom(request: Request) -> Response:
    return validated(request, services(request).pages.newsroom().encode(), HTML)


def _not_found(svc: Services, what: str) -> Response:
    return HTMLResponse(svc.pages.not_found(what), status_code=404)


def page_routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/blogs/{blog}", blog_page, methods=["GET"]),
        Route("/blogs/{blog}/feed.{format}", feed, methods=["GET"]),
        Route("/newsroom", newsroom, methods=["GET"]),
    ]
