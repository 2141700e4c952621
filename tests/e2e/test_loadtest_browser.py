"""The load-test tool's browser (server.loadtest.browser) against a real uvicorn serving a page with an ETag.

livepush's page has no ETag yet, so this small site stands in for one that has: the page answers
`If-None-Match` with 304 and is gzipped when asked, the widget's module imports two others, and
the assets carry the cache headers a browser obeys (no-cache: revalidate; max-age: use as is).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.loadtest.browser import Browser, Visitor
from server.loadtest.config import Target
from tests.conftest import wait_until

PAGE = (b'<html><head><link rel="stylesheet" href="/client/a.css"></head><body>'
        b'<main data-blog="b1" data-seq="7" data-epoch="e1"></main>'
        b'<script type="module" src="/client/w.js" data-livepush-blog="b1"></script></body></html>')
ASSETS = {
    "/client/w.js": (b'import { x } from "./lib/x.js";\nimport "./lib/y.js";\n', "no-cache"),
    "/client/lib/x.js": (b"export const x = 1;\n", "max-age=60"),
    "/client/lib/y.js": (b"console.log(2);\n", "max-age=60"),
    "/client/a.css": (b"main { color: black }\n", None),
}


async def page(request: Request) -> Response:
    if request.headers.get("if-none-match") == '"v1"':
        return Response(status_code=304, headers={"ETag": '"v1"'})
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(PAGE), media_type="text/html", headers={"ETag": '"v1"', "Content-Encoding": "gzip"})
    return Response(PAGE, media_type="text/html", headers={"ETag": '"v1"'})


async def asset(request: Request) -> Response:
    body, control = ASSETS[request.url.path]
    etag = f'"{len(body)}"'
    headers = {"ETag": etag, **({"Cache-Control": control} if control else {})}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript", headers=headers)


@pytest.fixture
async def site() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/blogs/b1", page), *(Route(path, asset) for path in ASSETS)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, 10, "uvicorn start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_a_repeat_visit_revalidates_the_page_and_uses_what_its_cache_allows(site: str) -> None:
    browser = Browser(Target.parse(site), "/blogs/b1", 10)
    visitor = Visitor()
    first = await browser.visit(visitor)
    assert (first.status, first.seq, first.epoch, first.etag) == (200, 7, "e1", True)
    assert (first.assets, first.assets_304, first.assets_cached) == (4, 0, 0)  # css, the module and its two imports
    again = await browser.visit(visitor)
    assert (again.status, again.seq, again.epoch) == (304, 7, "e1")  # the cached copy's position
    # w.js is no-cache and a.css has only its ETag: both revalidated (304); x.js and y.js fresh for 60 s
    assert (again.assets, again.assets_304, again.assets_cached) == (2, 2, 2)
    await browser.close()
