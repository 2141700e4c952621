"""Routes of the public pages: the blog list, a blog's reader page, and the newsroom console."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server import wire
from server.engine import BlogNotFound
from server.model import is_slug
from server.paging import BadCursor, Order, Page, decode_cursor
from server.services import services


async def index(request: Request) -> Response:
    svc = services(request)
    blogs = (await svc.engine.list_blogs(100, order="updated")).blogs
    return HTMLResponse(svc.pages.index([wire.blog_json(blog) for blog in blogs]))


async def blog_page(request: Request) -> Response:
    svc = services(request)
    blog_id: str = request.path_params["blog"]
    order: Order = "oldest" if request.query_params.get("order") == "oldest" else "newest"
    try:
        before = decode_cursor(request.query_params["before"]) if request.query_params.get("before") else None
    except BadCursor:
        before = None
    try:
        if not is_slug(blog_id):
            raise BlogNotFound(blog_id)
        if order == "newest" and before is None:
            # One read for blog and posts, so the page's data-seq matches exactly what it shows.
            snap = await svc.engine.snapshot(blog_id, svc.settings.snapshot_size)
            blog, page = snap.blog, snap.page
        else:
            blog = await svc.engine.get_blog(blog_id)
            page = await svc.engine.list_posts(blog_id, svc.settings.snapshot_size, order, before)
    except BlogNotFound:
        return HTMLResponse(svc.pages.not_found(f"the live blog {blog_id!r}"), status_code=404)
    return HTMLResponse(_render_blog(request, blog_id, wire.blog_json(blog), page, order))


def _render_blog(request: Request, blog_id: str, blog: dict[str, object], page: Page, order: Order) -> str:
    page_url = str(request.base_url).rstrip("/") + f"/blogs/{blog_id}"
    posts = [wire.post_json(post) for post in page.posts]
    return services(request).pages.blog(blog, posts, next_cursor=page.next, page_url=page_url, order=order)


async def newsroom(request: Request) -> Response:
    return HTMLResponse(services(request).pages.newsroom())


def page_routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/blogs/{blog}", blog_page, methods=["GET"]),
        Route("/newsroom", newsroom, methods=["GET"]),
    ]
