"""What a browser does before the widget opens its stream: fetch the page, then the widget's assets.

A `Visitor` is one browser's HTTP cache: the page's ETag (and the seq and epoch of the copy it
holds) and, per asset, its validators and how long it stays fresh. A `Browser` is a worker's
asset graph, learned once: the stylesheets and module scripts a page names, and the static
`import`s of each module, found in the first 200 answer for that URL. Each visit opens its own
connections, as a new page load does: up to MAX_CONNECTIONS (a browser's six per host), kept
alive for the visit, each request written in one segment with TCP_NODELAY. HTTP/1.1 is h11's
(the parser httpx uses), driven directly: httpx's client costs ~1 ms of CPU per request and its
pool stalls with hundreds of queued requests, and the tool must outrun a server's page path.

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
import socket
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import h11

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
MAX_CONNECTIONS = 6
READ_SIZE = 65536


def accept_encoding() -> str:
    """What a browser sends, limited to what this machine can decode (br needs the brotli package)."""
    if importlib.util.find_spec("brotli") is None:
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


@dataclass(slots=True)
class Answer:
    """One response: status, headers (lower-case names), the decoded body, and the bytes read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int


def freshness(response: Answer, now: float) -> float:
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


def decode(body: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding (gzip, deflate, br)."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-untyped, unused-ignore]  # only offered when installed

        decoded: bytes = brotli.decompress(body)
        return decoded
    raise PageError(f"unknown Content-Encoding {encoding!r}")


class HttpConnection:
    """One kept-alive HTTP/1.1 connection (h11 over an asyncio stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host
        self._h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, target: Target) -> HttpConnection:
        reader, writer = await asyncio.open_connection(target.host, target.port,
                                                       ssl=True if target.secure else None)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, target.host_header)

    @property
    def reusable(self) -> bool:
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    async def get(self, target: str, headers: dict[str, str]) -> Answer:
        request = h11.Request(method="GET", target=target,
                              headers=[("Host", self._host), *headers.items()])
        self._writer.write(self._h11.send(request) + (self._h11.send(h11.EndOfMessage()) or b""))
        status, answer_headers, body, wire = 0, {}, bytearray(), 0
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(READ_SIZE)
                wire += len(data)
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {name.decode().lower(): value.decode("latin-1") for name, value in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise PageError(f"{target}: connection closed mid-answer")
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        encoding = answer_headers.get("content-encoding", "").strip().lower()
        return Answer(status, answer_headers, decode(bytes(body), encoding), wire)

    def close(self) -> None:
        self._writer.close()


class Connections:
    """A visit's connections to the server: opened on demand, at most MAX_CONNECTIONS, closed after the visit."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._idle: list[HttpConnection] = []
        self._all: list[HttpConnection] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[HttpConnection]:
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is None:
                connection = await HttpConnection.open(self._target)
                self._all.append(connection)
            yield connection
            if connection.reusable:
                self._idle.append(connection)

    def close(self) -> None:
        for connection in self._all:
            connection.close()


class Browser:
    """What a worker knows about the site: the page's URL and the asset graph learned from answers."""

    def __init__(self, target: Target, blog_path: str, timeout: float) -> None:
        self._target = target
        self.page_url = f"{target.http_base}{blog_path}"
        self._origin = urlsplit(self.page_url)[:2]
        self._timeout = timeout
        self._encoding = accept_encoding()
        self._children: dict[str, list[str]] = {}

    async def close(self) -> None:
        """Nothing stays open between visits."""

    async def visit(self, visitor: Visitor) -> Visit:
        """Load the page (conditionally when the visitor holds a copy), then every asset it needs."""
        connections = Connections(self._target)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._visit(visitor, connections)
        except (OSError, TimeoutError, h11.ProtocolError, zlib.error) as exc:
            raise PageError(f"page: {exc!r}") from exc
        finally:
            connections.close()

    async def _visit(self, visitor: Visitor, connections: Connections) -> Visit:
        visit = Visit()
        headers = {"Accept": "text/html", "Accept-Encoding": self._encoding}
        if visitor.page_etag is not None:
            headers["If-None-Match"] = visitor.page_etag
        started = time.perf_counter_ns()
        response = await self._get(connections, self.page_url, headers)
        visit.page_ns = time.perf_counter_ns() - started
        visit.status = response.status
        visit.page_bytes = response.wire_bytes
        etag = response.headers.get("etag")
        visit.etag = etag is not None
        if response.status == 304 and visitor.visits:
            visit.seq, visit.epoch = visitor.page_seq, visitor.page_epoch
        elif response.status == 200:
            seq, epoch = PAGE_SEQ.search(response.body), PAGE_EPOCH.search(response.body)
            if seq is None or epoch is None:
                raise PageError("page: no data-seq/data-epoch in the blog page")
            visit.seq, visit.epoch = int(seq.group(1)), epoch.group(1).decode()
            visitor.page_seq, visitor.page_epoch, visitor.page_etag = visit.seq, visit.epoch, etag
            if self.page_url not in self._children:
                self._learn(self.page_url, response.body, html=True)
        else:
            raise PageError(f"page: HTTP {response.status}")
        visitor.visits += 1
        await self._assets(visitor, connections, self._children.get(self.page_url, []), visit, set())
        return visit

    async def _get(self, connections: Connections, url: str, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        async with connections.connection() as connection:
            return await connection.get(target, headers)

    async def _assets(self, visitor: Visitor, connections: Connections, urls: list[str], visit: Visit,
                      seen: set[str]) -> None:
        wanted = [url for url in urls if url not in seen]
        seen.update(wanted)
        await asyncio.gather(*(self._asset(visitor, connections, url, visit) for url in wanted))
        children = [child for url in wanted for child in self._children.get(url, [])]
        if children:
            await self._assets(visitor, connections, children, visit, seen)

    async def _asset(self, visitor: Visitor, connections: Connections, url: str, visit: Visit) -> None:
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
        response = await self._get(connections, url, headers)
        visit.assets += 1
        visit.asset_bytes += response.wire_bytes
        if response.status == 304 and cached is not None:
            visit.assets_304 += 1
            cached.fresh_until = freshness(response, now)
            return
        if response.status != 200:
            raise PageError(f"asset {url}: HTTP {response.status}")
        visitor.assets[url] = Cached(response.headers.get("etag"), response.headers.get("last-modified"),
                                     freshness(response, now))
        if url not in self._children:
            self._learn(url, response.body, html=False)

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
