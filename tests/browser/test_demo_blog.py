"""The demo blog (the seed page's content) as readers see it, with screenshots for people to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PageFactory, ServerFactory, live_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

DEMO = "russia-ukraine-2023-07-26"
SEED_BYLINE = "By Chris Lau, Sophie Tanno, Hannah Strange, Adrienne Vogt, Elise Hammond and Tori B. Powell, CNN"
PHONE = {"width": 390, "height": 844, "is_mobile": True, "has_touch": True}


async def test_the_demo_blog_reads_like_the_seed_page(start_server: ServerFactory, open_page: PageFactory,
                                                      screenshots: Path) -> None:
    """Header, stamps and posts as on the CNN page the demo reproduces; screenshots at two widths."""
    server = await start_server(demo=True)
    desktop = await live_page(open_page, f"{server.base}/blogs/{DEMO}")
    await expect(desktop.locator(".lp-title")).to_have_text("July 26, 2023 - Russia-Ukraine news")
    await expect(desktop.locator(".lp-byline")).to_have_text(SEED_BYLINE)
    await expect(desktop.locator(".lp-updated")).to_have_text("Updated 12:43 a.m. ET, July 27, 2023")
    await expect(desktop.locator(".lp-count")).to_have_text("9 Posts")
    shoigu = desktop.locator("#post-shoigu-pyongyang-talks")
    await expect(shoigu.locator(".lp-post-time")).to_have_text("6:34 a.m. ET, July 26, 2023")
    await expect(shoigu.locator(".lp-post-byline")).to_have_text("From CNN's Mihir Melwani and Anna Chernova")
    await expect(shoigu.locator("figcaption .credit")).to_have_text("KCNA via Reuters")
    await expect(shoigu.locator("aside.context")).to_contain_text("Some context:")
    await desktop.screenshot(path=screenshots / "reader-desktop.png")
    await shoigu.evaluate("post => post.scrollIntoView()")
    await desktop.screenshot(path=screenshots / "reader-desktop-figure.png")

    phone = await live_page(open_page, f"{server.base}/blogs/{DEMO}", **PHONE)
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    await phone.screenshot(path=screenshots / "reader-phone.png")
    await phone.locator("#post-shoigu-pyongyang-talks").evaluate("post => post.scrollIntoView()")
    await phone.screenshot(path=screenshots / "reader-phone-figure.png")


async def test_screenshot_of_a_live_blog_with_marked_posts(start_server: ServerFactory, open_page: PageFactory,
                                                          screenshots: Path) -> None:
    """Pinned, key-event and corrected posts, and a post that just arrived."""
    server = await start_server(demo=True)
    page = await live_page(open_page, f"{server.base}/blogs/{DEMO}")
    base = f"/api/blogs/{DEMO}/posts"
    await server.http.patch(f"{base}/ukraine-denies-kupyansk-losses", headers=server.auth(),
                            json={"pinned": True, "key_event": True})
    await server.http.patch(f"{base}/orikhiv-offensive-claims", headers=server.auth(),
                            json={"correction": "An earlier version of this post misspelled Robotyne."})
    response = await server.publish(DEMO, headline="Kremlin says it is studying the proposal",
                                    byline="From CNN's Anna Chernova", key_event=True,
                                    body="<p>The Kremlin said it was studying the proposal.</p>")
    post = response.json()["post"]
    await expect(page.locator(f"#post-{post['id']}")).to_be_visible()
    await expect(page.locator(".lp-posts > article").first.locator(".lp-pinned")).to_be_visible()
    await page.screenshot(path=screenshots / "reader-desktop-live.png", full_page=False)
    phone = await live_page(open_page, f"{server.base}/blogs/{DEMO}", **PHONE)
    await phone.evaluate("window.scrollTo(0, 2500)")
    await server.publish(DEMO, headline="Another update")
    await expect(phone.locator(".lp-new-posts")).to_be_visible()
    await phone.screenshot(path=screenshots / "reader-phone-new-posts.png")
