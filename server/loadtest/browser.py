"""What a browser does before the widget opens its stream: fetch the page, then the widget's assets.

A `Visitor` is one browser's HTTP cache: the page's ETag (and the seq and epoch of the copy it
holds) and, per asset, its validators and how long it stays fresh. A `Browser` is a worker's
HTTP client (httpx, kept-alive connections as a proxy in front of the server would keep them)
plus the asset graph it has learned: the stylesheets and module scripts a page names, and the
static `import`s of each module, found in the first 200 answer for that URL.

The page is always requested (a navigation), with `If-None-Match` when the visitor holds an
ETag; a 304 means the visitor's copy, with its data-seq and data-epoch, is current. An asset is
requested only when the visitor's copy is not fresh: `Cache-Control: max-age` (or `immutable`)
from the answer, else a tenth of its age since `Last-Modified` (the heuristic RFC 9111 §4.2.2
allows and browsers use); a stale copy is revalidated with `If-None-Match`/`If-Modified-Since`.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from server.loadtest.config import Target

PAGE_SEQ = re.compile(rb'data-seq="(\d+)"')
PAGE_EPOCH = re.compile(rb'data-epoch="([0-9A-Za-z_-]*)"')
STYLESHEET = re.compile(rb'<link\b[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"')
SCRIPT = re.compile(rb'<script\b[^>]*\bsrc="([^"]+)"')
MODULE_IMPORT = re.compile(rb'(?:^|[;\n])\s*(?:import|export)\b[^;"\']*?\bfrom\s*["\']([^"\']+)["\']'
                           rb'|(?:^|[;\n])\s*import\s*["\']([^"\']+)["\']')
MAX_AGE = re.compile(r"max-age=(\d+)")
HEURISTIC_SHARE = 0.1
IMMUTABLE_SECONDS = 365 * 86400.0


def accept_encoding() -> str:
    """What a browser sends, limited to what httpx can decode here (br needs the brotli package)."""
    if importlib.util.find_spec("brotli") is None and importlib.util.find_spec("brotlicffi") is None:
        return "gzip, deflate"
    return "gzip, deflate, br"


class PageError(Exception):
    """The page could not be loaded, or carries no data-seq/data-epoch."""


@dataclass(slots=True)
class Cached:
    """One cached response: its validators and until when (time.monotonic()) it is fresh."""

    etag: str | None = None
    last_modified: str | None = None
    fresh_until: float = 0.0


@dataclass(slots=True)
class Visitor:
    """One browser's cache, kept across its visits."""

    page_etag: str | None = None
    page_seq: int = 0
    page_epoch: str = ""
    assets: dict[str, Cached] = field(default_factory=dict)
    visits: int = 0


@dataclass(slots=True)
class Visit:
    """What one visit cost and found: the page's status and its position, and the assets' outcome."""

    status: int = 0
    seq: int = 0
    epoch: str = ""
    etag: bool = False
    page_ns: int = 0
    page_bytes: int = 0
    assets: int = 0
    assets_304: int = 0
    assets_cached: int = 0
    asset_bytes: int = 0


def freshness(response: httpx.Response, now: float) -> float:
    """Until when (monotonic) a response may be used without asking: max-age, immutable, else heuristic."""
    control = response.headers.get("cache-control", "").lower()
    if "no-store" in control or "no-cache" in control:
        return 0.0
    if "immutable" in control:
        return now + IMMUTABLE_SECONDS
    found = MAX_AGE.search(control)
    if found:
        return now + int(found.group(1))
    modified = response.headers.get("last-modified")
    if modified:
        try:
            age = time.time() - email.utils.parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            return 0.0
        return now + max(0.0, age) * HEURISTIC_SHARE
    return 0.0


class Browser:
    """A worker's HTTP client for pages and assets, and the asset graph learned from them."""

    def __init__(self, target: Target, blog_path: str, timeout: float, max_connections: int = 64) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.page_url = f"{target.http_base}{blog_path}"
        self._origin = urlsplit(self.page_url)[:2]
        self._client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout),
                                         trust_env=not target.is_loopback(), follow_redirects=True)
        self._encoding = accept_encoding()
        self._children: dict[str, list[str]] = {}

    async def close(self) -> None:
        await self._client.aclose()

    async def visit(self, visitor: Visitor) -> Visit:
        """Load the page (conditionally when the visitor holds a copy), then every asset it needs."""
        visit = Visit()
        headers = {"Accept": "text/html", "Accept-Encoding": self._encoding}
        if visitor.page_etag is not None:
            headers["If-None-Match"] = visitor.page_etag
        started = time.perf_counter_ns()
        try:
            response = await self._client.get(self.page_url, headers=headers)
        except httpx.HTTPError as exc:
            raise PageError(f"page: {exc!r}") from exc
        visit.page_ns = time.perf_counter_ns() - started
        visit.status = response.status_code
        visit.page_bytes = response.num_bytes_downloaded
        etag = response.headers.get("etag")
        visit.etag = etag is not None
        if response.status_code == 304 and visitor.visits:
            visit.seq, visit.epoch = visitor.page_seq, visitor.page_epoch
        elif response.status_code == 200:
            body = response.content
            seq, epoch = PAGE_SEQ.search(body), PAGE_EPOCH.search(body)
            if seq is None or epoch is None:
                raise PageError("page: no data-seq/data-epoch in the blog page")
            visit.seq, visit.epoch = int(seq.group(1)), epoch.group(1).decode()
            visitor.page_seq, visitor.page_epoch, visitor.page_etag = visit.seq, visit.epoch, etag
            self._learn(self.page_url, body, html=True)
        else:
            raise PageError(f"page: HTTP {response.status_code}")
        visitor.visits += 1
        await self._assets(visitor, self._children.get(self.page_url, []), visit, set())
        return visit

    async def _assets(self, visitor: Visitor, urls: list[str], visit: Visit, seen: set[str]) -> None:
        wanted = [url for url in urls if url not in seen]
        seen.update(wanted)
        await asyncio.gather(*(self._asset(visitor, url, visit) for url in wanted))
        children = [child for url in wanted for child in self._children.get(url, [])]
        if children:
            await self._assets(visitor, children, visit, seen)

    async def _asset(self, visitor: Visitor, url: str, visit: Visit) -> None:
        cached = visitor.assets.get(url)
        now = time.monotonic()
        if cached is not None and cached.fresh_until > now:
            visit.assets_cached += 1
            return
        headers = {"Accept-Encoding": self._encoding}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        try:
            response = await self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise PageError(f"asset {url}: {exc!r}") from exc
        visit.assets += 1
        visit.asset_bytes += response.num_bytes_downloaded
        if response.status_code == 304 and cached is not None:
            visit.assets_304 += 1
            cached.fresh_until = freshness(response, now)
            return
        if response.status_code != 200:
            raise PageError(f"asset {url}: HTTP {response.status_code}")
        visitor.assets[url] = Cached(response.headers.get("etag"), response.headers.get("last-modified"),
                                     freshness(response, now))
        if url not in self._children:
            self._learn(url, response.content, html=False)

    def _learn(self, url: str, body: bytes, html: bool) -> None:
        """Remember which same-origin assets *url* needs (a page's stylesheets and scripts, a module's imports)."""
        if html:
            found = [m.group(1) for m in STYLESHEET.finditer(body)] + [m.group(1) for m in SCRIPT.finditer(body)]
        elif url.endswith((".js", ".mjs")):
            found = [m.group(1) or m.group(2) for m in MODULE_IMPORT.finditer(body)]
        else:
            found = []
        children = []
        for raw in found:
            absolute = urljoin(url, raw.decode("utf-8", "replace").replace("&amp;", "&"))
            if urlsplit(absolute)[:2] == self._origin and absolute not in children:
                children.append(absolute)
        self._children[url] = children
