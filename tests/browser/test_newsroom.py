"""The newsroom console (/newsroom) in headless Chromium, against a real server and a reader page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import BrowserServer, PageErrors, PageFactory, live_page
from tests.conftest import ADMIN_TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Chromium logs every 4xx answer to fetch() as a console error; tests that provoke one allow it.
API_REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


async def signed_in(open_page: PageFactory, server: BrowserServer, token: str = ADMIN_TOKEN) -> Page:
    console = await open_page(f"{server.base}/newsroom")
    await console.get_by_label("Token", exact=True).fill(token)
    await console.get_by_role("button", name="Sign in").click()
    await expect(console.locator("#nr-app")).to_be_visible()
    return console


def row(console: Page, headline: str) -> Any:
    return console.locator(".nr-post", has_text=headline)


async def test_a_post_written_in_the_console_reaches_readers(server: BrowserServer, blog: dict[str, Any],
                                                              open_page: PageFactory, screenshots: Path) -> None:
    reader = await live_page(open_page, f"{server.base}/blogs/b1")
    console = await signed_in(open_page, server)
    await expect(console.get_by_label("Blog", exact=True)).to_have_value("b1")
    assert await console.evaluate("sessionStorage.getItem('livepush.token')") == ADMIN_TOKEN
    assert await console.evaluate("localStorage.length") == 0

    await console.get_by_label("Headline", exact=True).fill("Talks resume in Geneva")
    await console.get_by_label("Byline", exact=True).fill("From our correspondent")
    await console.get_by_label("Body (HTML)", exact=True).fill(
        '<p>Delegations <strong>met again</strong> on Monday.</p><script>window.hacked = 1</script>'
        '<p><a href="javascript:window.hacked = 2">a bad link</a></p>')
    await console.get_by_label("Key event", exact=True).check()
    preview = console.locator("#nr-preview")
    await expect(preview.locator(".lp-headline")).to_have_text("Talks resume in Geneva")
    await expect(preview.locator(".lp-body strong")).to_have_text("met again")
    await expect(preview.locator(".lp-key")).to_have_text("Key event")
    assert await preview.locator("script").count() == 0
    assert await preview.locator(".lp-body a").get_attribute("href") is None
    await console.evaluate("window.scrollTo(0, 0)")
    await console.screenshot(path=screenshots / "console.png", full_page=True)

    await console.get_by_role("button", name="Publish").click()
    await expect(console.locator("#nr-post-form .nr-form-status")).to_have_text("Published “Talks resume in Geneva”.")
    await expect(row(console, "Talks resume in Geneva")).to_be_visible()
    await expect(console.get_by_label("Headline", exact=True)).to_have_value("")

    article = reader.locator(".lp-post", has_text="Talks resume in Geneva")
    await expect(article).to_be_visible()
    await expect(article.locator(".lp-key")).to_have_text("Key event")
    await expect(article.locator(".lp-post-byline")).to_have_text("From our correspondent")
    await expect(article.locator(".lp-body")).to_have_text("Delegations met again on Monday.a bad link")
    await expect(reader.locator(".lp-count")).to_have_text("1 Post")
    assert await console.evaluate("window.hacked") is None


async def test_pin_key_event_correction_delete_and_end_from_the_console(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory, screenshots: Path) -> None:
    for headline in ("First news", "Second news"):
        assert (await server.publish(headline=headline, body="<p>Text.</p>")).status_code == 201
    reader = await live_page(open_page, f"{server.base}/blogs/b1")
    console = await signed_in(open_page, server)
    first = row(console, "First news")

    await first.get_by_role("button", name="Pin").click()
    await expect(first.get_by_role("button", name="Pin")).to_have_attribute("aria-pressed", "true")
    await expect(reader.locator(".lp-posts > article").first.locator(".lp-pinned")).to_have_text("Pinned")
    await expect(console.locator(".nr-post").first).to_contain_text("First news")

    await first.get_by_role("button", name="Key event").click()
    await expect(reader.locator(".lp-post", has_text="First news").locator(".lp-key")).to_be_visible()

    await first.get_by_role("button", name="Correction").click()
    correction = console.get_by_label("Correction (optional)", exact=True)
    await expect(correction).to_be_focused()
    await correction.fill("An earlier version gave the wrong day.")
    await console.get_by_role("button", name="Save changes").click()
    await expect(reader.locator(".lp-post", has_text="First news").locator(".lp-correction")) \
        .to_have_text("Correction: An earlier version gave the wrong day.")
    await expect(first.locator(".nr-corrected")).to_be_visible()
    await console.evaluate("window.scrollTo(0, 0)")
    await console.screenshot(path=screenshots / "console-posts.png", full_page=True)

    await row(console, "Second news").get_by_role("button", name="Delete").click()
    dialog = console.locator("#nr-confirm")
    await expect(dialog).to_contain_text("Delete “Second news”?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(row(console, "Second news")).to_be_visible()
    await row(console, "Second news").get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete post").click()
    await expect(row(console, "Second news")).to_have_count(0)
    await expect(reader.locator(".lp-post", has_text="Second news")).to_have_count(0)
    await expect(reader.locator(".lp-count")).to_have_text("1 Post")

    await console.get_by_role("button", name="End this blog").click()
    await dialog.get_by_role("button", name="End blog").click()
    await expect(console.locator("#nr-blog-status")).to_have_text("Ended")
    await expect(reader.locator(".lp-status")).to_have_text("This live blog has ended.")
    await expect(console.get_by_role("button", name="Reopen this blog")).to_be_visible()


async def test_a_stale_edit_shows_the_newer_version_instead_of_overwriting(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory, page_errors: PageErrors,
        screenshots: Path) -> None:
    page_errors.allow(API_REFUSED)  # the 412
    post = (await server.publish(headline="Original")).json()["post"]
    console = await signed_in(open_page, server)
    await row(console, "Original").get_by_role("button", name="Edit").click()
    await console.get_by_label("Headline", exact=True).fill("Mine")

    theirs = await server.http.patch(f"/api/blogs/b1/posts/{post['id']}", json={"headline": "Theirs"},
                                     headers=server.auth())
    assert theirs.status_code == 200
    await expect(row(console, "Theirs")).to_be_visible()
    await console.get_by_role("button", name="Save changes").click()

    conflict = console.locator(".nr-conflict")
    await expect(conflict.get_by_role("heading", name="Someone else changed this post")).to_be_focused()
    await expect(conflict.get_by_role("region", name="Saved version").locator(".lp-headline")).to_have_text("Theirs")
    await expect(conflict.get_by_role("region", name="Your version").locator(".lp-headline")).to_have_text("Mine")
    assert (await server.http.get(f"/api/blogs/b1/posts/{post['id']}")).json()["headline"] == "Theirs"
    await console.evaluate("window.scrollTo(0, 0)")
    await console.screenshot(path=screenshots / "console-conflict.png", full_page=True)

    await conflict.get_by_role("button", name="Save mine over it").click()
    await expect(console.locator("#nr-post-form .nr-form-status")).to_have_text("Saved “Mine” (version 3).")
    await expect(row(console, "Mine")).to_be_visible()


async def test_api_errors_are_shown_next_to_the_field_they_name(server: BrowserServer, blog: dict[str, Any],
                                                               open_page: PageFactory,
                                                               page_errors: PageErrors) -> None:
    page_errors.allow(API_REFUSED)
    console = await signed_in(open_page, server)
    await console.get_by_role("button", name="Publish").click()
    headline = console.get_by_label("Headline", exact=True)
    await expect(headline).to_have_attribute("aria-invalid", "true")
    await expect(console.locator("#nr-headline-error")).to_contain_text("at least 1 character")
    await expect(headline).to_be_focused()
    assert "nr-headline-error" in (await headline.get_attribute("aria-describedby") or "")

    await console.get_by_text("Create a blog").click()
    await console.get_by_label("Id (for the address)", exact=True).fill("Not A Slug")
    await console.get_by_label("Title", exact=True).fill("Another blog")
    await console.get_by_role("button", name="Create blog").click()
    await expect(console.locator("#nr-blog-id-error")).to_contain_text("should match pattern")
    await console.get_by_label("Id (for the address)", exact=True).fill("b1")
    await console.get_by_role("button", name="Create blog").click()
    await expect(console.locator("#nr-blog-id-error")).to_contain_text("exists already")
    await console.get_by_label("Id (for the address)", exact=True).fill("b2")
    await console.get_by_role("button", name="Create blog").click()
    await expect(console.get_by_label("Blog", exact=True)).to_have_value("b2")

    assert (await server.http.patch("/api/blogs/b2", json={"status": "ended"}, headers=server.auth())).status_code \
        == 200
    await expect(console.locator("#nr-blog-status")).to_have_text("Ended")
    await headline.fill("Too late")
    await console.get_by_role("button", name="Publish").click()
    await expect(console.locator("#nr-post-form .nr-form-status")).to_have_text(
        "this live blog has ended and accepts no new posts")


async def test_a_refused_token_sends_the_editor_back_to_sign_in(server: BrowserServer, blog: dict[str, Any],
                                                                open_page: PageFactory,
                                                                page_errors: PageErrors) -> None:
    page_errors.allow(API_REFUSED)
    console = await signed_in(open_page, server, token="not-the-token")
    await console.get_by_label("Headline", exact=True).fill("Draft kept")
    await console.get_by_role("button", name="Publish").click()
    token = console.get_by_label("Token", exact=True)
    await expect(token).to_be_visible()
    await expect(console.locator("#nr-token-error")).to_have_text("The server does not accept this token.")
    assert await console.evaluate("sessionStorage.getItem('livepush.token')") is None
    await token.fill(ADMIN_TOKEN)
    await console.get_by_role("button", name="Sign in").click()
    await expect(console.get_by_label("Headline", exact=True)).to_have_value("Draft kept")


async def test_publishing_again_after_a_lost_answer_does_not_post_twice(server: BrowserServer,
                                                                      blog: dict[str, Any],
                                                                      open_page: PageFactory,
                                                                      page_errors: PageErrors) -> None:
    """The first publish reaches the server but its answer is lost; the retry carries the same
    Idempotency-Key, so the server returns the first post instead of making a second."""
    page_errors.allow(re.compile(r"net::ERR_FAILED"))
    console = await signed_in(open_page, server)
    keys: list[str] = []

    async def lose_the_answer(route: Route) -> None:
        keys.append(await route.request.header_value("idempotency-key") or "")
        await route.fetch()
        await route.abort()

    await console.route("**/api/blogs/b1/posts", lose_the_answer, times=1)
    await console.get_by_label("Headline", exact=True).fill("Only once")
    await console.get_by_role("button", name="Publish").click()
    await expect(console.locator("#nr-post-form .nr-form-status")).to_contain_text("cannot be reached")
    async with console.expect_response("**/api/blogs/b1/posts") as answer:
        await console.get_by_role("button", name="Publish").click()
    response = await answer.value
    assert response.status == 201 and await response.header_value("idempotent-replayed") == "true"
    assert await response.request.header_value("idempotency-key") == keys[0]
    posts = (await server.http.get("/api/blogs/b1/posts")).json()["posts"]
    assert [p["headline"] for p in posts] == ["Only once"]
