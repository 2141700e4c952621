"""Chromium's native EventSource, with no livepush code on the page, resumes exactly on its own.

The page opens `new EventSource(url)` and only records what arrives. Through a drain and a restart
the browser reconnects by itself with the last `id:` (epoch:seq) and gets exactly the missed events;
after a restart that lost the history (a new epoch) it gets a snapshot, never another history's events.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page

from server.engine.memory import MemoryEngine
from tests.browser.conftest import NETWORK_ERRORS, BrowserServer, PageErrors, PageFactory, ServerFactory
from tests.redis_servers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

RECORD = """url => {
  window.received = []; window.opens = 0;
  const source = new EventSource(url);
  source.onopen = () => { window.opens += 1; };
  source.onmessage = event => {
    const data = JSON.parse(event.data);
    if (data.type !== 'ping') window.received.push({id: event.lastEventId, data});
  };
}"""


async def drain(server: BrowserServer) -> None:
    """SIGTERM's path: readers closed 1012 by the drainer, then the server stops."""
    await server.services.drainer.drain(lambda: setattr(server.server, "should_exit", True))
    await server.stop()


async def received(page: Page, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"window.received.length >= {count}", timeout=15_000)
    found: list[dict[str, Any]] = await page.evaluate("window.received")
    return found


async def test_native_eventsource_resumes_through_a_drain_and_restarts_on_a_new_epoch(
        start_server: ServerFactory, open_page: PageFactory, page_errors: PageErrors) -> None:
    page_errors.allow(NETWORK_ERRORS)
    page_errors.allow(re.compile(r"favicon\.ico"))  # the JSON page the test starts from has none
    engine, port = MemoryEngine(), free_port()
    first = await start_server(port=port, engine=engine)
    await first.create_blog("b1", title="Test blog")
    await first.publish(headline="one")
    page = await open_page(f"{first.base}/api/blogs/b1")  # any page of this origin: connect-src 'self'
    await page.evaluate(RECORD, f"{first.base}/sse/blogs/b1")
    [snapshot] = await received(page, 1)
    epoch = snapshot["data"]["epoch"]
    assert (snapshot["id"], snapshot["data"]["type"]) == (f"{epoch}:1", "snapshot")

    await drain(first)
    second = await start_server(port=port, engine=engine)  # the same storage: history survives
    await second.publish(headline="two")
    await second.publish(headline="three")
    resumed = (await received(page, 3))[1:]
    assert [(r["id"], r["data"]["type"]) for r in resumed] == [(f"{epoch}:2", "post.created"),
                                                               (f"{epoch}:3", "post.created")]
    assert await page.evaluate("window.opens") == 2

    await drain(second)
    third = await start_server(port=port, engine=MemoryEngine())  # storage lost: a new epoch
    await third.create_blog("b1", title="Test blog")
    await third.publish(headline="after the loss")
    fresh = (await received(page, 4))[3]
    assert fresh["data"]["type"] == "snapshot" and fresh["data"]["epoch"] != epoch
    assert [p["headline"] for p in fresh["data"]["posts"]] == ["after the loss"]
    assert await page.evaluate("window.opens") == 3
