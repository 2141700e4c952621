"""Browser fixtures: the system Chromium driven by Playwright, against real livepush servers.

Every browser test runs in the session's event loop (see `pytestmark` in the test modules): one
Chromium serves the whole session, and the servers these fixtures start run as tasks in that
same loop, like the rest of the suite's servers do in theirs.

Each page records console errors and uncaught exceptions; a test fails if any appear that it
did not expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from server.engine import Engine
from server.settings import Settings
from tests.conftest import LiveServer, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# What Chromium logs by itself while a server is down; a test that stops its server allows these.
NETWORK_ERRORS = re.compile(r"WebSocket connection to .* failed|net::ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET")


class BrowserServer(LiveServer):
    """A LiveServer that can listen on a given port (to restart in place) and share an engine.

    Sharing one engine between a stopped server and its successor is a restart with durable
    storage, as with Redis: the history survives, so readers resume with `since`.
    """

    def __init__(self, settings: Settings, port: int = 0, engine: Engine | None = None) -> None:
        self.engine = engine
        super().__init__(settings, engine)
        self.server.config.port = port


ServerFactory = Callable[..., Awaitable[BrowserServer]]


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test does it)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start servers (optionally on a fixed port, with a given engine); all stop after the test."""
    started: list[BrowserServer] = []

    async def start(port: int = 0, engine: Engine | None = None, **overrides: Any) -> BrowserServer:
        live = BrowserServer(make_settings("memory", None, **overrides), port, engine)
        await live.start()
        started.append(live)
        return live

    yield start
    for live in reversed(started):
        if not live.server.should_exit:
            await live.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def server(start_server: ServerFactory) -> BrowserServer:
    return await start_server()


@pytest_asyncio.fixture(loop_scope="session")
async def blog(server: BrowserServer) -> dict[str, Any]:
    return await server.create_blog("b1", title="Test blog", authors=["A. Writer", "B. Reporter"], source="Test")


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of the pages a test opened."""

    messages: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def record(self, text: str) -> None:
        self.messages.append(text)

    def allow(self, pattern: re.Pattern[str]) -> None:
        self.allowed.append(pattern)

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.allowed)]


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert errors.unexpected() == [], "the pages logged errors"


PageFactory = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser, page_errors: PageErrors) -> AsyncIterator[PageFactory]:
    """Open pages in fresh browser contexts (desktop size unless told), recording their errors."""
    contexts: list[BrowserContext] = []

    async def open_page(url: str | None = None, *, width: int = 1280, height: int = 800,
                        init_script: str | None = None, **options: Any) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        page = await context.new_page()
        page.on("console", lambda message: _console(page_errors, message))
        page.on("pageerror", lambda error: page_errors.record(f"uncaught: {error}"))
        if init_script is not None:
            await page.add_init_script(init_script)
        if url is not None:
            await page.goto(url)
        return page

    yield open_page
    for context in contexts:
        await context.close()


def _console(errors: PageErrors, message: ConsoleMessage) -> None:
    if message.type == "error":
        errors.record(f"console: {message.text} ({message.location.get('url', '')})")


async def live_page(open_page: PageFactory, url: str, **options: Any) -> Page:
    """Open *url* and wait until its widget is connected."""
    page = await open_page(url, **options)
    await page.locator(".lp-blog[data-state=live]").wait_for()
    return page



@contextlib.asynccontextmanager
async def html_site(html: str) -> AsyncIterator[str]:
    """Serve *html* for every GET on a free loopback port: another site to embed the widget in.

    Yields the site's origin, spelled `http://localhost:<port>` so it differs from the livepush
    server's `http://127.0.0.1:<port>` origin.
    """
    body = html.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()
        writer.close()

    site = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://localhost:{site.sockets[0].getsockname()[1]}"
    finally:
        site.close()
        await site.wait_closed()
