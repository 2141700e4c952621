"""The homepage badge (client_demo/badge.js) in headless Chromium, embedded on another origin.

Three blogs change while the badge shows them over one `GET /ws` connection: titles, Live/Ended,
counts, latest headlines and "updated N min ago" follow within a second, a restart is resumed,
and the polite live region speaks at most once a minute.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket, expect

from server.engine.memory import MemoryEngine
from server.model import PostCreate
from server.newsroom import Newsroom
from tests.browser.conftest import NETWORK_ERRORS, BrowserServer, PageErrors, PageFactory, ServerFactory, html_site
from tests.redis_servers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
# Counts what the live region says: every announcement replaces the region's content.
COUNT_ANNOUNCEMENTS = """
window.announcements = [];
new MutationObserver((mutations) => {
  for (const m of mutations) if (m.target.classList?.contains("lp-badge-live")) window.announcements.push(m.target.textContent);
}).observe(document, {childList: true, subtree: true});
"""


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_page(server: BrowserServer, blogs: str = "alpha,bravo,charlie") -> str:
    """A news site's home page: links to two of the blogs (the badge adds the third)."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>News site</title>
        <link rel="icon" href="data:,"></head>
        <body><h1>Today</h1><a id="own-link" href="/elsewhere">A link of the host site</a>
        <ul class="lp-badge" aria-label="Live coverage">
          <li><a href="{server.base}/blogs/alpha">Alpha coverage</a></li>
          <li><a href="{server.base}/blogs/bravo">Bravo coverage</a></li>
        </ul>
        <script type="module" src="{server.base}/client/badge.js" data-livepush-blogs="{blogs}"></script>
        <p id="after">The host page continues.</p></body></html>"""


async def publish(server: BrowserServer, blog: str, headline: str, **fields: Any) -> dict[str, Any]:
    response = await server.http.post(f"/api/blogs/{blog}/posts", json={"headline": headline, **fields},
                                      headers=server.auth())
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()["post"]
    return post


async def three_blogs(server: BrowserServer) -> None:
    for blog, title in (("alpha", "Alpha live"), ("bravo", "Bravo live"), ("charlie", "Charlie live")):
        await server.create_blog(blog, title=title)
    await publish(server, "alpha", "Alpha one", published_at=at(0))
    await publish(server, "bravo", "Bravo one", published_at=at(0))
    await publish(server, "bravo", "Bravo two", published_at=at(1))


def item(page: Page, blog: str) -> Any:
    return page.locator(f".lp-badge-blog[data-blog={blog}]")


async def shown(page: Page, *blogs: str) -> None:
    """Wait (as long as a page load may take) until the first snapshots of *blogs* are shown."""
    for blog in blogs:
        await expect(item(page, blog).locator(".lp-badge-details")).to_be_visible()


async def expect_item(page: Page, blog: str, title: str, status: str, count: str, latest: str) -> None:
    row = item(page, blog)
    await expect(row.locator(".lp-badge-title")).to_have_text(title, timeout=1000)
    await expect(row.locator(".lp-badge-status")).to_have_text(status, timeout=1000)
    await expect(row.locator(".lp-badge-count")).to_have_text(count, timeout=1000)
    await expect(row.locator(".lp-badge-latest")).to_have_text(latest, timeout=1000)


async def test_three_blogs_stay_current_over_one_connection(server: BrowserServer, open_page: PageFactory,
                                                            screenshots: Path) -> None:
    await three_blogs(server)
    sockets: list[WebSocket] = []
    async with html_site(host_page(server)) as host:
        page = await open_page()
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto(f"{host}/home.html")
        await shown(page, "alpha", "bravo", "charlie")
        await expect_item(page, "alpha", "Alpha live", "Live", "1 Post", "Alpha one")
        await expect_item(page, "bravo", "Bravo live", "Live", "2 Posts", "Bravo two")
        await expect(item(page, "charlie").locator(".lp-badge-title")).to_have_text("Charlie live")
        await expect(item(page, "charlie").locator(".lp-badge-count")).to_have_text("0 Posts")
        await expect(item(page, "charlie").locator(".lp-badge-headline")).to_be_hidden()
        # The host's links were enhanced in place; the third blog got an item of its own.
        assert await page.eval_on_selector_all(".lp-badge > li", "items => items.map(i => i.dataset.blog)") \
            == ["alpha", "bravo", "charlie"]
        assert await item(page, "charlie").locator(".lp-badge-title").get_attribute("href") \
            == f"{server.base}/blogs/charlie"
        await expect(item(page, "alpha").locator(".lp-badge-updated")).to_have_text("updated just now")

        for round_ in range(2):
            for blog in ("alpha", "bravo", "charlie"):
                await publish(server, blog, f"{blog} news {round_}")
        await expect_item(page, "alpha", "Alpha live", "Live", "3 Posts", "alpha news 1")
        await expect_item(page, "bravo", "Bravo live", "Live", "4 Posts", "bravo news 1")
        await expect_item(page, "charlie", "Charlie live", "Live", "2 Posts", "charlie news 1")
        latest = item(page, "charlie").locator(".lp-badge-latest")
        href = await latest.get_attribute("href")
        assert href is not None and href.startswith(f"{server.base}/blogs/charlie#post-")

        # An edit of the latest headline, a deletion of it, a retitle and an ending.
        post_id = href.rsplit("#post-", 1)[1]
        edited = await server.http.patch(f"/api/blogs/charlie/posts/{post_id}", json={"headline": "Charlie, fixed"},
                                         headers=server.auth())
        assert edited.status_code == 200
        await expect(latest).to_have_text("Charlie, fixed", timeout=1000)
        deleted = await server.http.delete(f"/api/blogs/charlie/posts/{post_id}", headers=server.auth())
        assert deleted.status_code == 200
        await expect_item(page, "charlie", "Charlie live", "Live", "1 Post", "charlie news 0")
        ended = await server.http.patch("/api/blogs/alpha", json={"status": "ended", "title": "Alpha, over"},
                                        headers=server.auth())
        assert ended.status_code == 200
        await expect_item(page, "alpha", "Alpha, over", "Ended", "3 Posts", "alpha news 1")
        await expect(item(page, "alpha")).to_have_attribute("data-status", "ended")
        await page.locator(".lp-badge").screenshot(path=screenshots / "badge.png")

        assert [socket.url for socket in sockets] == [f"{server.base.replace('http', 'ws')}/ws?conflate=1"]
        # The badge's stylesheet leaves the host's own elements alone.
        assert await page.eval_on_selector("#own-link", "a => getComputedStyle(a).color") == "rgb(0, 0, 238)"


async def test_without_javascript_the_badge_is_its_links(server: BrowserServer, open_page: PageFactory) -> None:
    await three_blogs(server)
    async with html_site(host_page(server)) as host:
        page = await open_page(f"{host}/home.html", java_script_enabled=False)
        links = page.locator(".lp-badge a")
        await expect(links).to_have_text(["Alpha coverage", "Bravo coverage"])
        assert await links.first.get_attribute("href") == f"{server.base}/blogs/alpha"


async def test_unknown_blogs_stay_plain_links(server: BrowserServer, open_page: PageFactory) -> None:
    """A blog the server does not know gets an `error` on the shared connection; the others go on."""
    await three_blogs(server)
    async with html_site(host_page(server, "alpha,nosuch,bravo")) as host:
        page = await open_page(f"{host}/home.html")
        await shown(page, "alpha", "bravo")
        await expect_item(page, "alpha", "Alpha live", "Live", "1 Post", "Alpha one")
        await expect(item(page, "nosuch")).to_have_attribute("data-state", "error")
        await expect(item(page, "nosuch").locator(".lp-badge-details")).to_be_hidden()
        await expect(item(page, "nosuch").locator(".lp-badge-title")).to_have_text("nosuch")
        await publish(server, "bravo", "Bravo three")
        await expect_item(page, "bravo", "Bravo live", "Live", "3 Posts", "Bravo three")


async def test_one_polite_summary_a_minute_and_minutes_ago_advance(server: BrowserServer,
                                                                  open_page: PageFactory) -> None:
    await three_blogs(server)
    async with html_site(host_page(server)) as host:
        page = await open_page(init_script=COUNT_ANNOUNCEMENTS)
        await page.clock.install()  # the page's clock runs, and can be moved on
        await page.goto(f"{host}/home.html")
        await shown(page, "alpha", "bravo", "charlie")
        region = page.locator(".lp-badge-live")
        await expect(region).to_have_attribute("aria-live", "polite")
        await expect(region).to_be_empty()  # the first snapshots are not news

        await publish(server, "alpha", "Alpha two")
        await expect(region).to_have_text("Alpha live: 1 new post, latest: Alpha two.")
        await publish(server, "bravo", "Bravo three")
        await publish(server, "charlie", "Charlie one")
        await publish(server, "charlie", "Charlie two")
        await expect_item(page, "charlie", "Charlie live", "Live", "2 Posts", "Charlie two")
        await expect(item(page, "bravo").locator(".lp-badge-latest")).to_have_text("Bravo three")
        assert await page.evaluate("window.announcements") == ["Alpha live: 1 new post, latest: Alpha two."]

        await page.clock.fast_forward(60_000)
        await expect(region).to_have_text(
            "Bravo live: 1 new post, latest: Bravo three. Charlie live: 2 new posts, latest: Charlie two.")
        assert len(await page.evaluate("window.announcements")) == 2
        await expect(item(page, "alpha").locator(".lp-badge-updated")).to_have_text("updated 1 min ago")
        await page.clock.fast_forward(300_000)
        await expect(item(page, "alpha").locator(".lp-badge-updated")).to_have_text("updated 6 min ago")
        # The exact time is the time element's title, in the blog's zone and the house style.
        await expect(item(page, "alpha").locator(".lp-badge-updated time")).to_have_attribute(
            "title", re.compile(r"^\d{1,2}:\d\d [ap]\.m\. ET, [A-Z][a-z]+ \d{1,2}, \d{4}$"))


async def test_a_restart_is_resumed_on_the_one_connection(start_server: ServerFactory, open_page: PageFactory,
                                                          page_errors: PageErrors) -> None:
    """The server restarts with its storage: each blog resumes with its own since/epoch and catches up,
    and the catch-up is told in one summary."""
    page_errors.allow(NETWORK_ERRORS)
    engine, port = MemoryEngine(), free_port()
    first = await start_server(port=port, engine=engine)
    await three_blogs(first)
    async with html_site(host_page(first)) as host:
        page = await open_page(f"{host}/home.html", init_script=COUNT_ANNOUNCEMENTS)
        badge = page.locator(".lp-badge")
        await shown(page, "alpha", "bravo", "charlie")
        await expect_item(page, "bravo", "Bravo live", "Live", "2 Posts", "Bravo two")

        await first.stop()
        await expect(badge).to_have_attribute("data-state", "reconnecting")
        await expect(page.locator(".lp-badge-note")).to_have_text("Reconnecting…")
        newsroom = Newsroom(engine)  # written while no server runs: only a resume can deliver these
        for blog in ("alpha", "charlie"):
            await newsroom.publish(blog, PostCreate(headline=f"{blog} while down"), None)

        second = await start_server(port=port, engine=engine)
        await expect(badge).to_have_attribute("data-state", "live", timeout=15_000)
        await expect(page.locator(".lp-badge-note")).to_be_hidden()
        await expect_item(page, "alpha", "Alpha live", "Live", "2 Posts", "alpha while down")
        await expect_item(page, "charlie", "Charlie live", "Live", "1 Post", "charlie while down")
        region = page.locator(".lp-badge-live")
        await expect(region).to_contain_text("Alpha live: 1 new post, latest: alpha while down.")
        await expect(region).to_contain_text("Charlie live: 1 new post, latest: charlie while down.")
        assert len(await page.evaluate("window.announcements")) == 1
        await publish(second, "bravo", "Bravo after")
        await expect_item(page, "bravo", "Bravo live", "Live", "3 Posts", "Bravo after")
        assert await page.evaluate("window.livepush.badge.connection.opens") == 2


async def test_when_every_known_post_is_deleted_the_latest_is_read_from_the_api(
        start_server: ServerFactory, open_page: PageFactory) -> None:
    """The snapshot holds only the newest posts: once those are all deleted, the badge pages the API (CORS)."""
    server = await start_server(snapshot_size=1)
    await three_blogs(server)
    async with html_site(host_page(server, "bravo")) as host:
        page = await open_page(f"{host}/home.html")
        await shown(page, "bravo")
        latest = item(page, "bravo").locator(".lp-badge-latest")
        await expect(latest).to_have_text("Bravo two")
        post_id = (await latest.get_attribute("href") or "").rsplit("#post-", 1)[1]
        deleted = await server.http.delete(f"/api/blogs/bravo/posts/{post_id}", headers=server.auth())
        assert deleted.status_code == 200
        await expect_item(page, "bravo", "Bravo live", "Live", "1 Post", "Bravo one")


async def test_markup_in_titles_and_headlines_is_text(server: BrowserServer, open_page: PageFactory) -> None:
    """Titles and headlines are plain text on the wire; the badge writes them as text, never as HTML."""
    hostile = '<img src=x onerror="window.pwned=1">'
    await server.create_blog("alpha", title=f"Alpha {hostile}")
    await publish(server, "alpha", f"Headline {hostile}")
    async with html_site(host_page(server, "alpha")) as host:
        page = await open_page(f"{host}/home.html")
        await shown(page, "alpha")
        await expect_item(page, "alpha", f"Alpha {hostile}", "Live", "1 Post", f"Headline {hostile}")
        await publish(server, "alpha", f"Second {hostile}")
        await expect(item(page, "alpha").locator(".lp-badge-latest")).to_have_text(f"Second {hostile}")
        await expect(page.locator(".lp-badge-live")).to_have_text(f"Alpha {hostile}: 1 new post, latest: Second {hostile}.")
        assert await page.locator(".lp-badge img").count() == 0
        assert await page.evaluate("window.pwned") is None


async def test_two_badges_on_a_page_share_one_connection(server: BrowserServer, open_page: PageFactory) -> None:
    await three_blogs(server)
    script = f'<script type="module" src="{server.base}/client/badge.js" data-livepush-blogs="%s"></script>'
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>News site</title>
        <link rel="icon" href="data:,"></head><body>
        <nav class="lp-badge" aria-label="Top stories"><a href="{server.base}/blogs/alpha">Alpha</a>
          <a href="{server.base}/blogs/bravo">Bravo</a></nav>{script % "alpha,bravo"}
        <p>Elsewhere on the page:</p>{script % "bravo,charlie"}</body></html>"""
    sockets: list[WebSocket] = []
    async with html_site(html) as host:
        page = await open_page()
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto(f"{host}/home.html")
        badges = page.locator(".lp-badge")
        await expect(badges).to_have_count(2)
        await expect(badges.nth(0).locator(".lp-badge-blog")).to_have_count(2)
        await expect(badges.nth(1).locator(".lp-badge-blog")).to_have_count(2)
        await publish(server, "bravo", "Bravo three")
        await expect(page.locator(".lp-badge-blog[data-blog=bravo] .lp-badge-latest")).to_have_text(
            ["Bravo three", "Bravo three"], timeout=1000)
        await expect(page.locator(".lp-badge-live")).to_have_count(1)
        assert len(sockets) == 1
