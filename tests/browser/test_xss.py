"""Nothing a post contains can run script in a reader's page: checked in Chromium, not only in Python.

Hostile posts are published before the page loads (server-rendered) and while it is open
(rendered by the widget). Every vector tries to set `window.__xss`; none may, and the page's
Content-Security-Policy is in force.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import BrowserServer, PageErrors, PageFactory, live_page
from tests.unit.test_sanitize import VECTORS

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PAYLOAD = "window.__xss=(window.__xss||0)+1"
BODIES = [vector.replace("alert(1)", PAYLOAD).replace("alert('XSS')", PAYLOAD) for vector in VECTORS] + [
    f'<img src=x onerror="{PAYLOAD}">', f'<a href="javascript:{PAYLOAD}" id="bait">click</a>',
    f"<svg><animate onbegin=\"{PAYLOAD}\" attributeName=x dur=1s>", f"<iframe srcdoc=\"<script>{PAYLOAD}</script>\">",
]
TEXTS = [f'<img src=x onerror="{PAYLOAD}">', f"</script><script>{PAYLOAD}</script>", f"{{{{7*7}}}}<b>{PAYLOAD}</b>"]


async def publish_hostile_posts(server: BrowserServer, tag: str) -> int:
    count = 0
    for index, body in enumerate(BODIES):
        text = TEXTS[index % len(TEXTS)]
        response = await server.publish(headline=f"{tag} {index} {text}", byline=text, body=body,
                                        correction=text if index % 2 else "")
        assert response.status_code == 201, response.text
        count += 1
    return count


async def test_hostile_posts_run_no_script(server: BrowserServer, blog: dict[str, object],
                                          open_page: PageFactory, page_errors: PageErrors) -> None:
    page_errors.allow(re.compile(r"ERR_NAME_NOT_RESOLVED"))  # https images of the vectors: no network here
    rendered = await publish_hostile_posts(server, "before")
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    csp = (await page.request.get(f"{server.base}/blogs/b1")).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    live = await publish_hostile_posts(server, "after")
    await expect(page.locator(".lp-posts > article")).to_have_count(20 + live)  # the first page, then every live one
    await expect(page.locator(".lp-count")).to_have_text(f"{rendered + live} Posts")
    hrefs = await page.eval_on_selector_all(".lp-body a[href]", "links => links.map(a => a.href)")
    assert hrefs and all(href.startswith(("https:", "http:", "mailto:")) for href in hrefs), hrefs
    assert await page.evaluate("window.__xss") is None
    # Text fields stay text: the markup in a headline is shown, not parsed.
    await expect(page.locator(".lp-headline").first).to_contain_text("<")
