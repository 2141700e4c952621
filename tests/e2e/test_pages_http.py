"""The index (paginated), the console and the widget's assets over HTTP: validators and cache lifetimes."""

from __future__ import annotations

import re

from tests.conftest import LiveServer, ServerFactory

ITEM = re.compile(r'<li class="lp-blog-item" data-blog="([^"]+)">')
NEXT = re.compile(r'<a class="lp-pager-next" href="([^"]+)" rel="next">')


async def test_the_index_is_paginated_newest_first(start_server: ServerFactory) -> None:
    """Blogs most recently updated first, LIVEPUSH_INDEX_PAGE_SIZE per page, each page linking the next and the
    first; a cursor that is not one gives the first page."""
    server = await start_server(index_page_size=3)
    ids = [f"blog-{n}" for n in range(7)]
    for blog_id in ids:
        await server.create_blog(blog_id, title=blog_id)
    newest_first = list(reversed(ids))
    pages, url = [], "/"
    while url:
        response = await server.http.get(url.replace("&amp;", "&"))
        assert response.status_code == 200
        pages.append(ITEM.findall(response.text))
        assert ('class="lp-pager-first" href="/"' in response.text) == (url != "/")
        found = NEXT.search(response.text)
        url = found.group(1) if found else ""
    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:]]
    for junk in ("0", "-1", "abc", "\uff11_x", "9" * 40 + "_blog-1", "1_Not_A_Slug"):
        response = await server.http.get("/", params={"after": junk})
        assert response.status_code == 200 and ITEM.findall(response.text) == newest_first[0:3], junk


async def test_index_and_console_carry_only_validators(server: LiveServer) -> None:
    """ETag of the bytes, no-cache, and 304 for the current tag; a change to the list changes the tag."""
    for path in ("/", "/newsroom"):
        first = await server.http.get(path)
        assert first.headers["cache-control"] == "no-cache"
        again = await server.http.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    index = await server.http.get("/")
    await server.create_blog("fresh", title="Fresh")
    changed = await server.http.get("/", headers={"If-None-Match": index.headers["etag"]})
    assert changed.status_code == 200 and "Fresh" in changed.text


async def test_assets_are_versioned_and_immutable(server: LiveServer) -> None:
    """Pages link /client/v/<hash of client_demo>/...: a year, immutable; other versions and /client/ revalidate."""
    await server.create_blog("b1", title="Blog")
    page = (await server.http.get("/blogs/b1")).text
    stylesheet = re.search(r'href="(/client/v/([0-9a-f]{16})/livepush\.css)"', page)
    script = re.search(r'src="(/client/v/[0-9a-f]{16}/widget\.js)"', page)
    assert stylesheet is not None and script is not None
    version = stylesheet.group(2)
    for path in (stylesheet.group(1), script.group(1), f"/client/v/{version}/lib/liveblog.js"):
        response = await server.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "etag" in response.headers
    plain = await server.http.get("/client/widget.js")
    assert plain.headers["cache-control"] == "no-cache" and "etag" in plain.headers
    assert plain.content == (await server.http.get(script.group(1))).content
    stale = await server.http.get("/client/v/0000000000000000/widget.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    revalidated = await server.http.get("/client/widget.js", headers={"If-None-Match": plain.headers["etag"]})
    assert revalidated.status_code == 304
    assert (await server.http.get(f"/client/v/{version}/nope.js")).status_code == 404
