"""The reader page in headless Chromium: server-rendered, then kept live by client_demo/widget.js."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.engine.memory import MemoryEngine
from server.model import Blog, PostCreate, PostUpdate
from server.newsroom import Newsroom
from server.timefmt import format_stamp
from tests.browser.conftest import (
    NETWORK_ERRORS,
    BrowserServer,
    PageErrors,
    PageFactory,
    ServerFactory,
    html_site,
    live_page,
)
from tests.redis_servers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEW_YORK = "America/New_York"
START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def publish(server: BrowserServer, **fields: Any) -> dict[str, Any]:
    response = await server.publish(**fields)
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()["post"]
    return post


async def edit(server: BrowserServer, post_id: str, **fields: Any) -> dict[str, Any]:
    response = await server.http.patch(f"/api/blogs/b1/posts/{post_id}", json=fields, headers=server.auth())
    assert response.status_code == 200, response.text
    post: dict[str, Any] = response.json()["post"]
    return post


async def feed_ids(page: Page) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all(".lp-posts > article", "els => els.map(e => e.dataset.id)")
    return ids


async def test_a_published_post_appears_within_a_second(server: BrowserServer, blog: dict[str, Any],
                                                        open_page: PageFactory) -> None:
    """A post published over HTTP shows up at the top within 1 s, with the header's count and Updated."""
    earlier = await publish(server, headline="Earlier", published_at=at(0))
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    await expect(page.locator(".lp-count")).to_have_text("1 Post")

    post = await publish(server, headline="Kick-off", byline="From our reporter", body="<p>It <em>began</em>.</p>")
    article = page.locator(f"#post-{post['id']}")
    await expect(article).to_be_visible(timeout=1000)
    await expect(page.locator(".lp-count")).to_have_text("2 Posts", timeout=1000)
    stamp = format_stamp(post["published_at"], NEW_YORK)
    updated = page.locator(".lp-updated time")
    await expect(updated).to_have_text(stamp)
    await expect(updated).to_have_attribute("datetime", post["published_at"])
    await expect(article.locator(".lp-post-time time")).to_have_text(stamp)
    await expect(article.locator(".lp-headline")).to_have_text("Kick-off")
    await expect(article.locator(".lp-post-byline")).to_have_text("From our reporter")
    await expect(article.locator(".lp-body em")).to_have_text("began")
    assert await feed_ids(page) == [post["id"], earlier["id"]]
    await expect(page.locator(".lp-live")).to_have_text("New post: Kick-off")


async def test_edits_pins_key_events_deletes_and_the_end_are_applied_in_place(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory) -> None:
    alpha = await publish(server, headline="Alpha", published_at=at(0))
    beta = await publish(server, headline="Beta", published_at=at(1))
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    first = page.locator(".lp-posts > article").first
    await expect(first).to_have_attribute("data-id", beta["id"])

    await edit(server, alpha["id"], headline="Alpha, corrected", correction="An earlier version misspelled a name.")
    article = page.locator(f"#post-{alpha['id']}")
    await expect(article.locator(".lp-headline")).to_have_text("Alpha, corrected")
    await expect(article.locator(".lp-correction")).to_have_text("Correction: An earlier version misspelled a name.")
    await expect(article).to_have_attribute("data-version", "2")

    await edit(server, alpha["id"], pinned=True)
    await expect(first).to_have_attribute("data-id", alpha["id"])
    await expect(article.locator(".lp-pinned")).to_have_text("Pinned")

    await edit(server, beta["id"], key_event=True)
    await expect(page.locator(f"#post-{beta['id']} .lp-key")).to_have_text("Key event")

    response = await server.http.delete(f"/api/blogs/b1/posts/{beta['id']}", headers=server.auth())
    assert response.status_code == 200
    await expect(page.locator(f"#post-{beta['id']}")).to_have_count(0)
    await expect(page.locator(".lp-count")).to_have_text("1 Post")

    response = await server.http.patch("/api/blogs/b1", json={"status": "ended", "title": "Test blog (ended)"},
                                       headers=server.auth())
    assert response.status_code == 200
    await expect(page.locator(".lp-status")).to_have_text("This live blog has ended.")
    await expect(page.locator(".lp-title")).to_have_text("Test blog (ended)")
    await expect(page.locator("main.lp-blog")).to_have_attribute("data-status", "ended")
    await expect(page).to_have_title("Test blog (ended)")
    assert await feed_ids(page) == [alpha["id"]]
    await expect(page.locator(".lp-live")).to_be_empty()  # edits are not announced


async def test_new_posts_wait_behind_a_button_while_the_reader_is_scrolled_down(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory) -> None:
    """Nothing moves under a reader who scrolled down; the button and the tab title count the waiting posts."""
    for i in range(12):
        await publish(server, headline=f"Post {i}", published_at=at(i), body="<p>Text.</p>" * 4)
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await page.wait_for_function("window.scrollY > 0")
    reading = page.locator(".lp-posts > article").last
    before = await reading.bounding_box()

    fresh = [await publish(server, headline=f"Fresh {i}", published_at=at(60 + i)) for i in range(2)]
    button = page.locator(".lp-new-posts")
    await expect(button).to_have_text("↑ 2 new posts")
    await expect(page).to_have_title("(2) Test blog")
    await expect(page.locator(".lp-count")).to_have_text("14 Posts")
    assert await page.locator(f"#post-{fresh[0]['id']}").count() == 0
    assert await reading.bounding_box() == before, "the post being read moved"

    await button.click()
    newest = page.locator(f"#post-{fresh[1]['id']}")
    await expect(newest).to_be_focused()
    await expect(newest).to_be_in_viewport()
    await expect(button).to_be_hidden()
    await expect(page).to_have_title("Test blog")
    ids = await feed_ids(page)
    assert ids[:2] == [fresh[1]["id"], fresh[0]["id"]] and len(ids) == len(set(ids)) == 14


async def test_load_more_pages_older_posts_through_the_api(server: BrowserServer, blog: dict[str, Any],
                                                           open_page: PageFactory) -> None:
    posts = [await publish(server, headline=f"Post {i}", published_at=at(i)) for i in range(45)]
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    url = page.url
    more = page.locator(".lp-more")
    for shown in (40, 45):
        await more.click()
        await expect(page.locator(".lp-posts > article")).to_have_count(shown)
    await expect(more).to_have_count(0)
    assert page.url == url, "Load more navigated away"
    assert await feed_ids(page) == [post["id"] for post in reversed(posts)]


async def test_a_permalink_to_an_old_post_loads_older_pages_until_it_is_found(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory) -> None:
    posts = [await publish(server, headline=f"Post {i}", published_at=at(i)) for i in range(45)]
    old = posts[2]
    page = await open_page(f"{server.base}/blogs/b1#post-{old['id']}")
    target = page.locator(f"#post-{old['id']}")
    await expect(target).to_be_focused()
    await expect(target).to_be_in_viewport()
    ids = await feed_ids(page)
    assert len(ids) == len(set(ids)) == 45


async def test_on_a_later_page_new_posts_are_offered_not_inserted(server: BrowserServer, blog: dict[str, Any],
                                                                  open_page: PageFactory) -> None:
    """/blogs/b1?before=... (the no-JS "Load more") shows older posts: a new one is a button to page one."""
    for i in range(25):
        await publish(server, headline=f"Post {i}", published_at=at(i))
    cursor = (await server.http.get("/api/blogs/b1/posts")).json()["next"]
    page = await live_page(open_page, f"{server.base}/blogs/b1?before={cursor}&order=newest")
    await expect(page.locator(".lp-posts > article")).to_have_count(5)
    post = await publish(server, headline="Breaking")
    await expect(page.locator(".lp-new-posts")).to_have_text("↑ 1 new post")
    assert await page.locator(f"#post-{post['id']}").count() == 0
    await page.locator(".lp-new-posts").click()
    await page.wait_for_url(f"{server.base}/blogs/b1")
    await expect(page.locator(".lp-posts > article").first).to_have_attribute("data-id", post["id"])


async def test_sort_by_oldest_first_reorders_in_place(server: BrowserServer, blog: dict[str, Any],
                                                      open_page: PageFactory) -> None:
    posts = [await publish(server, headline=f"Post {i}", published_at=at(i)) for i in range(3)]
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    await page.evaluate("window.stayed = true")
    oldest_first = page.get_by_role("link", name="Oldest first")
    await oldest_first.click()
    await expect(oldest_first).to_have_attribute("aria-current", "true")
    await expect(page.locator(".lp-posts > article").first).to_have_attribute("data-id", posts[0]["id"])
    assert await page.evaluate("window.stayed") is True
    assert page.url.endswith("?order=oldest")
    latest = await publish(server, headline="Latest")
    await expect(page.locator(".lp-posts > article").last).to_have_attribute("data-id", latest["id"])
    assert await feed_ids(page) == [*(p["id"] for p in posts), latest["id"]]
    await expect(page.locator(".lp-live")).to_contain_text("New post: Latest")


async def test_the_page_reads_without_javascript(server: BrowserServer, blog: dict[str, Any],
                                                 open_page: PageFactory) -> None:
    for i in range(25):
        await publish(server, headline=f"Post {i}", published_at=at(i), body=f"<p>Body {i}</p>")
    page = await open_page(f"{server.base}/blogs/b1", java_script_enabled=False)
    await expect(page.locator(".lp-title")).to_have_text("Test blog")
    await expect(page.locator(".lp-byline")).to_have_text("By A. Writer and B. Reporter, Test")
    await expect(page.locator(".lp-count")).to_have_text("25 Posts")
    await expect(page.locator(".lp-posts > article")).to_have_count(20)
    await expect(page.locator(".lp-posts > article").first.locator(".lp-body")).to_have_text("Body 24")
    await page.get_by_role("link", name="Load more posts").click()
    await expect(page.locator(".lp-posts > article")).to_have_count(5)
    await expect(page.locator(".lp-posts > article").last.locator(".lp-headline")).to_have_text("Post 0")


async def test_the_widget_takes_over_without_replacing_anything(server: BrowserServer, blog: dict[str, Any],
                                                                open_page: PageFactory) -> None:
    """No server-rendered element is removed or re-rendered, on load or by an event: the reader sees no flicker."""
    await publish(server, headline="One", pinned=True, key_event=True, correction="Fixed.")
    await publish(server, headline="Two")
    watch = """
        window.removed = [];
        new MutationObserver((records) => {
          for (const record of records) {
            for (const node of record.removedNodes) if (node.nodeType === Node.ELEMENT_NODE) window.removed.push(node.outerHTML);
          }
        }).observe(document, { childList: true, subtree: true });
    """
    page = await live_page(open_page, f"{server.base}/blogs/b1", init_script=watch)
    three = await publish(server, headline="Three")
    await expect(page.locator(f"#post-{three['id']}")).to_be_visible()
    assert await page.evaluate("window.removed") == []


async def test_the_script_renders_posts_exactly_like_the_server(server: BrowserServer, blog: dict[str, Any],
                                                                open_page: PageFactory) -> None:
    """client_demo/lib/render.js and templates/blog.html produce the same elements, header and posts."""
    body = ('<figure><img src="/static/demo/shoigu-pyongyang.svg" alt="A photo" width="800" height="450">'
            '<figcaption>A caption. <span class="credit">Agency</span></figcaption></figure>'
            '<p>Text with <a href="https://example.com/">a link</a>.</p><ul><li>One</li><li>Two</li></ul>'
            '<aside class="context"><p><strong>Some context:</strong> more.</p></aside>')
    await publish(server, headline="Plain", published_at=at(0))
    await publish(server, headline="Everything", byline="From a reporter", body=body, pinned=True, key_event=True,
                  correction="A correction <b>in plain text</b>.", published_at=at(1))
    await publish(server, headline="Key only", key_event=True, published_at=at(2))
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    differences = await page.evaluate("""async () => {
        const { renderPost, renderHeader } = await import("/client/lib/render.js");
        const blog = await (await fetch("/api/blogs/b1")).json();
        const { posts } = await (await fetch("/api/blogs/b1/posts")).json();
        const strip = (node) => {
          for (const child of [...node.childNodes]) {
            if (child.nodeType === Node.TEXT_NODE && !child.data.trim()) child.remove(); else strip(child);
          }
          return node;
        };
        const pairs = [[document.querySelector(".lp-header"), renderHeader(blog, "newest")],
          ...posts.map((post) => [document.getElementById(`post-${post.id}`), renderPost(post, blog.timezone)])];
        return pairs.filter(([server, script]) => !strip(server.cloneNode(true)).isEqualNode(strip(script)))
          .map(([server, script]) => [server.outerHTML, script.outerHTML]);
    }""")
    assert differences == []


TIME_CASES = [
    ("2023-07-27T04:43:00Z", "America/New_York"),
    ("2023-07-26T00:34:00Z", "America/New_York"),
    ("2023-07-26T10:34:00.123Z", "America/New_York"),
    ("2023-07-26T16:00:00Z", "America/New_York"),
    ("2023-01-15T05:07:00Z", "America/New_York"),
    ("2023-01-15T17:00:00Z", "America/Chicago"),
    ("2023-07-26T10:34:00Z", "America/Los_Angeles"),
    ("2023-07-26T10:34:00Z", "America/Phoenix"),
    ("2023-07-26T10:34:00Z", "America/Anchorage"),
    ("2023-07-26T10:34:00Z", "Pacific/Honolulu"),
    ("2023-07-26T10:34:00Z", "Europe/London"),
    ("2023-01-26T10:34:00Z", "Europe/London"),
    ("2023-07-26T10:34:00Z", "Europe/Paris"),
    ("2023-07-26T10:34:00Z", "Europe/Kyiv"),
    ("2023-07-26T10:34:00Z", "UTC"),
    ("2023-07-26T10:34:00Z", "Asia/Dubai"),
    ("2023-07-26T10:34:00Z", "Asia/Kathmandu"),
    ("2023-07-26T10:34:00Z", "America/Sao_Paulo"),
    ("2023-07-26T10:34:00Z", "America/Toronto"),
    ("2023-07-26T10:34:00Z", "Not/AZone"),
]


async def test_the_script_formats_times_like_the_server(server: BrowserServer, blog: dict[str, Any],
                                                        open_page: PageFactory) -> None:
    page = await open_page(f"{server.base}/blogs/b1")
    stamps = await page.evaluate("""async (cases) => {
        const { formatStamp } = await import("/client/lib/timefmt.js");
        return cases.map(([moment, zone]) => formatStamp(moment, zone));
    }""", TIME_CASES)
    assert stamps == [format_stamp(moment, zone) for moment, zone in TIME_CASES]


async def test_zone_labels_follow_the_server_rendered_page(start_server: ServerFactory,
                                                           open_page: PageFactory) -> None:
    """Where the browser's zone names differ from tzdata's (Tokyo: "GMT+9" vs "JST"), live posts
    still use the page's spelling, learned from the stamps the server rendered."""
    server = await start_server()
    await server.create_blog("b1", title="Tokyo", timezone="Asia/Tokyo")
    page = await live_page(open_page, f"{server.base}/blogs/b1")
    post = await publish(server, headline="Live from Tokyo")
    stamp = format_stamp(post["published_at"], "Asia/Tokyo")
    assert " JST, " in stamp
    await expect(page.locator(f"#post-{post['id']} .lp-post-time")).to_have_text(stamp)


@pytest.mark.parametrize("block", [
    "delete window.WebSocket;",
    "window.WebSocket = function () { throw new DOMException('blocked', 'SecurityError'); };",
    # A handshake the server refuses (HTTP 403 for an unknown WebSocket path), on this origin so the CSP allows it.
    "window.WebSocket = class extends WebSocket {"
    " constructor() { super(location.origin.replace('http', 'ws') + '/ws/refused'); } };",
], ids=["missing", "throwing", "refused"])
async def test_server_sent_events_stand_in_when_websockets_fail(server: BrowserServer, blog: dict[str, Any],
                                                                open_page: PageFactory, page_errors: PageErrors,
                                                                block: str) -> None:
    page_errors.allow(NETWORK_ERRORS)
    await publish(server, headline="Before")
    page = await live_page(open_page, f"{server.base}/blogs/b1", init_script=block)
    await expect(page.locator(".lp-blog")).to_have_attribute("data-transport", "sse")
    post = await publish(server, headline="Over SSE")
    await expect(page.locator(f"#post-{post['id']}")).to_be_visible(timeout=1000)
    await expect(page.locator(".lp-count")).to_have_text("2 Posts")


async def test_a_restart_is_survived_without_loss_or_doubles(start_server: ServerFactory, open_page: PageFactory,
                                                            page_errors: PageErrors, screenshots: Path) -> None:
    """The server restarts on the same port with its storage: the page shows "Reconnecting…", then
    resumes with since/epoch and catches up on what it missed, each post once."""
    page_errors.allow(NETWORK_ERRORS)
    engine, port = MemoryEngine(), free_port()
    first = await start_server(port=port, engine=engine)
    await first.create_blog("b1", title="Test blog")
    kept = await publish(first, headline="Before the restart", published_at=at(0))
    page = await live_page(open_page, f"{first.base}/blogs/b1")
    root = page.locator(".lp-blog")

    await first.stop()
    await expect(root).to_have_attribute("data-state", "reconnecting")
    notice = page.locator(".lp-connection")
    await expect(notice).to_have_text("Reconnecting…")
    await expect(notice).to_have_css("opacity", "1")  # it fades in late, so quick reconnects never show it
    await page.screenshot(path=screenshots / "reader-reconnecting.png")
    newsroom = Newsroom(engine)  # written while no server runs: only a resume can deliver these
    missed = [(await newsroom.publish("b1", PostCreate(headline=f"Missed {i}", published_at=START + timedelta(minutes=i + 1)),
                                      None)).value for i in range(2)]
    await newsroom.edit("b1", kept["id"], PostUpdate(headline="Edited while down"), None)

    second = await start_server(port=port, engine=engine)
    await expect(root).to_have_attribute("data-state", "live", timeout=15_000)
    await expect(page.locator(".lp-connection")).to_be_hidden()
    await expect(page.locator(f"#post-{kept['id']} .lp-headline")).to_have_text("Edited while down")
    after = await publish(second, headline="After the restart", published_at=at(3))
    await expect(page.locator(f"#post-{after['id']}")).to_be_visible()
    await expect(page.locator(".lp-count")).to_have_text("4 Posts")
    assert await feed_ids(page) == [after["id"], missed[1].id, missed[0].id, kept["id"]]
    await expect(root).to_have_attribute("data-transport", "websocket")


async def test_a_restart_that_lost_history_starts_over_from_a_snapshot(start_server: ServerFactory,
                                                                       open_page: PageFactory,
                                                                       page_errors: PageErrors) -> None:
    """A new epoch means the old seq counts nothing: the page re-renders from the server's snapshot."""
    page_errors.allow(NETWORK_ERRORS)
    port = free_port()
    first = await start_server(port=port)
    await first.create_blog("b1", title="Test blog")
    gone = await publish(first, headline="Lost with the old store")
    page = await live_page(open_page, f"{first.base}/blogs/b1")
    await first.stop()

    fresh = MemoryEngine()
    now = datetime.now(UTC)
    await fresh.create_blog(Blog(id="b1", title="Test blog, again", created_at=now, updated_at=now))
    survivor = (await Newsroom(fresh).publish("b1", PostCreate(headline="In the new store"), None)).value
    await start_server(port=port, engine=fresh)

    await expect(page.locator(f"#post-{survivor.id}")).to_be_visible(timeout=15_000)
    await expect(page.locator(f"#post-{gone['id']}")).to_have_count(0)
    await expect(page.locator(".lp-title")).to_have_text("Test blog, again")
    await expect(page.locator(".lp-count")).to_have_text("1 Post")
    assert await feed_ids(page) == [survivor.id]


async def test_a_silent_connection_is_dropped_after_45_seconds_and_resumed(
        server: BrowserServer, blog: dict[str, Any], open_page: PageFactory) -> None:
    """No message (not even a ping) for 45 s means a dead link, even if the browser has not noticed."""
    page = await open_page()
    await page.clock.install(time=START)
    await page.clock.pause_at(START + timedelta(seconds=1))  # the page's timers run only when told to
    await page.goto(f"{server.base}/blogs/b1")
    root = page.locator(".lp-blog")
    await expect(root).to_have_attribute("data-state", "live")
    opens = "window.livepush.widgets[0].connection.opens"
    await page.clock.run_for(44_900)
    assert (await root.get_attribute("data-state"), await page.evaluate(opens)) == ("live", 1)
    await page.clock.run_for(200)
    await expect(root).to_have_attribute("data-state", "reconnecting")
    await page.clock.run_for(1_000)  # the first retry waits 0.5 to 1 s
    await expect(root).to_have_attribute("data-state", "live")
    assert await page.evaluate(opens) == 2
    post = await publish(server, headline="Still live")
    await expect(page.locator(f"#post-{post['id']}")).to_be_visible()


async def test_embedded_on_another_site_with_one_script_tag(server: BrowserServer, blog: dict[str, Any],
                                                            open_page: PageFactory, screenshots: Path) -> None:
    """A page on another origin embeds the blog: the widget builds its own markup, reads the snapshot
    from the stream, pages through the API (CORS) and loads images from the livepush server."""
    figure = ('<figure><img src="/static/demo/shoigu-pyongyang.svg" alt="A photo" width="800" height="450">'
              '<figcaption>Caption <span class="credit">Agency</span></figcaption></figure>')
    for i in range(24):
        await publish(server, headline=f"Post {i}", published_at=at(i))
    pictured = await publish(server, headline="With a photo", body=figure, published_at=at(30))
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>News site</title>
        <link rel="icon" href="data:,"></head>
        <body><h1>Our coverage</h1><a id="own-link" href="/elsewhere">A link of the host site</a>
        <script type="module" src="{server.base}/client/widget.js" data-livepush-blog="b1"></script>
        <p id="after">The host page continues.</p></body></html>"""
    async with html_site(html) as host:
        page = await open_page(f"{host}/article.html")
        await check_embed(page, server, pictured["id"])
        assert page.url == f"{host}/article.html"
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=screenshots / "embed.png")


async def check_embed(page: Page, server: BrowserServer, pictured: str) -> None:
    widget = page.locator("section.lp-blog[data-blog=b1]")
    await expect(widget).to_have_attribute("data-state", "live")
    await expect(widget.locator(".lp-title")).to_have_text("Test blog")
    await expect(widget.locator(".lp-posts > article")).to_have_count(20)
    image = widget.locator(f"#post-{pictured} img")
    await expect(image).to_have_attribute("src", f"{server.base}/static/demo/shoigu-pyongyang.svg")
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await image.element_handle())
    assert await page.evaluate("document.querySelector('script[data-livepush-blog]').nextElementSibling.tagName") \
        == "SECTION"

    await widget.locator(".lp-more").click()
    await expect(widget.locator(".lp-posts > article")).to_have_count(25)
    await page.evaluate("window.scrollTo(0, 0)")
    post = await publish(server, headline="Live in the embed")
    await expect(widget.locator(f"#post-{post['id']}")).to_be_visible(timeout=1000)
    # The widget's stylesheet leaves the host's own elements alone.
    color = await page.eval_on_selector("#own-link", "a => getComputedStyle(a).color")
    assert color == "rgb(0, 0, 238)"


async def test_reduced_motion_turns_animations_off(server: BrowserServer, blog: dict[str, Any],
                                                  open_page: PageFactory) -> None:
    page = await live_page(open_page, f"{server.base}/blogs/b1", reduced_motion="reduce")
    dot = await page.eval_on_selector(".lp-count", "el => getComputedStyle(el, '::before').animationIterationCount")
    assert dot == "1"
    duration = await page.eval_on_selector(".lp-new-posts", "el => parseFloat(getComputedStyle(el).transitionDuration)")
    assert duration < 0.001
