"""A reader who loads a cached page while the newsroom publishes, edits and deletes ends with the server's state."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser.conftest import BrowserServer, PageFactory, live_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def shown(page: Page) -> list[tuple[str, str, str]]:
    """(id, version, headline) of every post in the page's feed, top to bottom."""
    found: list[list[str]] = await page.eval_on_selector_all(
        ".lp-posts > article",
        "els => els.map(e => [e.dataset.id, e.dataset.version, e.querySelector('.lp-headline').textContent])")
    return [(a, b, c) for a, b, c in found]


async def server_state(server: BrowserServer) -> list[tuple[str, str, str]]:
    response = await server.http.get("/api/blogs/b1/posts?limit=100")
    return [(p["id"], str(p["version"]), p["headline"]) for p in response.json()["posts"]]


async def test_a_cached_page_loaded_mid_news_ends_with_the_servers_state(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory) -> None:
    """Pages opened (some from the cache) between posts, edits and deletes all converge on what the API says."""
    posts = []
    for n in range(4):
        response = await server.publish(headline=f"Before {n}", published_at=f"2024-03-01T12:0{n}:00Z")
        posts.append(response.json()["post"])
    url = f"{server.base}/blogs/b1"
    pages = [await live_page(open_page, url)]
    hits = server.services.page_cache.hits
    pages.append(await live_page(open_page, url))  # nothing happened in between: served from memory
    assert server.services.page_cache.hits > hits

    async def newsroom() -> None:
        for n in range(6):
            response = await server.publish(headline=f"During {n}")
            assert response.status_code == 201
            posts.append(response.json()["post"])
            target = posts[n % 4]
            edited = await server.http.patch(f"/api/blogs/b1/posts/{target['id']}", headers=server.auth(),
                                             json={"headline": f"{target['headline']} (edit {n})"})
            assert edited.status_code == 200
            if n % 2:
                gone = posts.pop(-2)  # a post published during the run, before the latest
                deleted = await server.http.delete(f"/api/blogs/b1/posts/{gone['id']}", headers=server.auth())
                assert deleted.status_code == 200
            await asyncio.sleep(0)

    async def readers() -> None:
        for _ in range(4):
            pages.append(await live_page(open_page, url))

    await asyncio.gather(newsroom(), readers())
    pages.append(await live_page(open_page, url))
    expected = await server_state(server)
    assert len(expected) == 7
    for page in pages:
        await page.wait_for_function(
            "expected => JSON.stringify([...document.querySelectorAll('.lp-posts > article')].map(e =>"
            " [e.dataset.id, e.dataset.version, e.querySelector('.lp-headline').textContent])) === expected",
            arg=json.dumps([list(post) for post in expected], separators=(",", ":"), ensure_ascii=False), timeout=5000)
        assert await shown(page) == expected
