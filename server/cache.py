"""Responses kept in memory per blog state: rendered once, compressed once per coding, served as bytes.

An entry is one *variant* (the reader page of a blog in one order from one cursor, or the first
page of the posts API) at one state of its blog, `(epoch, seq)`. It is current while the relay's
position for that blog, the last event this process handed to its readers, is that same state:
the check on a hit is two dict lookups and a tuple compare, no I/O. Any event moves the position,
so the next request renders the new state (once, however many ask at the same moment) and
replaces the entry. The cache holds a relay watch on every blog it has entries for, which is what
keeps the position moving; the last entry of a blog to go releases it. Freshness is therefore the
relay's: a page is as current as what this process's stream readers have been sent.

Memory is bounded by bytes, not entries: every body (identity and each compressed form) and its
header lines count against `LIVEPUSH_PAGE_CACHE_BYTES`, evicting least recently used entries.
Three quarters of the budget serve first pages (what nearly every reader and the CDN ask for);
pages reached through a "load more" cursor share the last quarter, so a crawler walking every
cursor, or a flood of forged ones, cannot push the front pages out.

An entry's ETag is derived from (build, variant, epoch, seq, coding): strong, distinct per
variant and per content coding, and new after a deploy that changes templates or assets.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import brotli

from server.engine import Engine
from server.model import Blog
from server.negotiate import choose_coding, none_match
from server.relay import Relay
from server.singleflight import run_once

Key = tuple[str, str, str, str]
"""(kind, blog, order, cursor-or-limit): what one cached response varies on besides its coding."""
Header = tuple[bytes, bytes]

T = TypeVar("T")
READ_ATTEMPTS: Final = 3
GZIP_LEVEL: Final = 6
BROTLI_QUALITY: Final = 6  # ~1 ms for a 35 KB page; 11 would take ~40 ms per state and save ~8%
ENTRY_OVERHEAD: Final = 1024  # the objects around the bodies: entry, renditions, header tuples, key
FRONT_SHARE: Final = 0.75
WATCH_WAIT: Final = 1.0  # seconds a blog's first render waits for its relay watch to be in place


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a loader read and rendered: the body of *blog* as of (epoch, seq).

    *consistent* is False when the body could not be tied to one state (the blog kept changing
    between reads): it is then served once, with no ETag and `no-store`, and never cached.
    """

    blog: str
    epoch: str
    seq: int
    body: bytes
    media_type: bytes
    consistent: bool = True


@dataclass(frozen=True, slots=True)
class Rendition:
    """One coding of an entry, with its header lines ready to send.

    `headers`/`not_modified` are for the routed path (security headers and the request id are added
    by the middleware); `direct`/`direct_not_modified` carry the security headers too, for hits
    served below the middleware stack.
    """

    body: bytes
    headers: list[Header]
    not_modified: list[Header]
    direct: list[Header]
    direct_not_modified: list[Header]
    raw: bytes  # `direct` as header lines, each ending in CRLF
    raw_not_modified: bytes


class Entry:
    """One variant at one state of its blog."""

    __slots__ = ("_cache", "_rendered", "_stem", "blog", "consistent", "epoch", "front", "key", "renditions", "seq",
                 "size", "tags")

    def __init__(self, cache: PageCache, key: Key, rendered: Rendered, front: bool) -> None:
        self._cache = cache
        self._rendered = rendered
        self.key = key
        self.blog = rendered.blog
        self.epoch = rendered.epoch
        self.seq = rendered.seq
        self.front = front
        self.consistent = rendered.consistent
        digest = hashlib.blake2b(repr((cache.build, key, rendered.epoch, rendered.seq)).encode(), digest_size=9)
        self._stem = b'"%d.%s' % (rendered.seq, digest.hexdigest().encode())
        self.tags: frozenset[bytes] = frozenset(self._tag(c) for c in ("identity", *CODERS)) if self.consistent \
            else frozenset()
        self.renditions: dict[str, Rendition] = {}
        self.size = ENTRY_OVERHEAD + len(rendered.body)

    def _tag(self, coding: str) -> bytes:
        return self._stem + (b'"' if coding == "identity" else b"." + coding.encode() + b'"')

    def rendition(self, coding: str) -> Rendition:
        """The response in *coding*, compressed on first use and kept (counted against the budget)."""
        found = self.renditions.get(coding)
        if found is None:
            found = self.renditions[coding] = self._build(coding)
            if coding != "identity":
                self.size += len(found.body)
                self._cache.grew(self, len(found.body))
        return found

    def answer(self, accept_encoding: bytes | None, if_none_match: bytes | None) -> tuple[int, Rendition]:
        """(200 or 304, the rendition) for a request with these header values; headers are in the rendition."""
        rendition = self.rendition(choose_coding(accept_encoding))
        if if_none_match is not None and self.tags and none_match(if_none_match, self.tags):
            return 304, rendition
        return 200, rendition

    def _build(self, coding: str) -> Rendition:
        body = self._rendered.body if coding == "identity" else CODERS[coding](self._rendered.body)
        if self.consistent:
            common = [(b"etag", self._tag(coding)), (b"cache-control", self._cache.cache_control),
                      (b"vary", b"Accept-Encoding")]
        else:
            common = [(b"cache-control", b"no-store"), (b"vary", b"Accept-Encoding")]
        headers = [(b"content-type", self._rendered.media_type), (b"content-length", b"%d" % len(body)), *common]
        if coding != "identity":
            headers.append((b"content-encoding", coding.encode()))
        extra = self._cache.security_headers(self._rendered.media_type)
        vary = (b"vary", self._cache.direct_vary)
        direct = [vary if name == b"vary" else (name, value) for name, value in headers] + extra
        direct_not_modified = [vary if name == b"vary" else (name, value) for name, value in common] + extra
        return Rendition(body, headers, common, direct, direct_not_modified, _lines(direct),
                         _lines(direct_not_modified))


def _lines(headers: list[Header]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, GZIP_LEVEL, mtime=0)


def _brotli(body: bytes) -> bytes:
    compressed: bytes = brotli.compress(body, quality=BROTLI_QUALITY)
    return compressed


CODERS: Final[dict[str, Callable[[bytes], bytes]]] = {"br": _brotli, "gzip": _gzip}


class PageCache:
    """Cached responses per (variant, blog state), bounded by bytes; see the module docstring."""

    def __init__(self, relay: Relay, budget: int, cache_control: str, build: str,
                 security_headers: Callable[[bytes], list[Header]], direct_vary: bytes = b"Accept-Encoding") -> None:
        self._relay = relay
        self.budget = budget
        self.cache_control = cache_control.encode()
        self.build = build
        self.security_headers = security_headers
        self.direct_vary = direct_vary  # what the middleware stack makes of "Vary: Accept-Encoding" (CORS adds Origin)
        self._front: OrderedDict[Key, Entry] = OrderedDict()
        self._deep: OrderedDict[Key, Entry] = OrderedDict()
        self._limits = {True: int(budget * FRONT_SHARE), False: budget - int(budget * FRONT_SHARE)}
        self._bytes = {True: 0, False: 0}
        self._per_blog: dict[str, int] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._loading: dict[Key, asyncio.Future[Entry]] = {}
        self.hits = 0
        self.renders = 0

    @property
    def size(self) -> int:
        """Bytes counted against the budget now."""
        return self._bytes[True] + self._bytes[False]

    def __len__(self) -> int:
        return len(self._front) + len(self._deep)

    def entries(self) -> list[Entry]:
        return [*self._front.values(), *self._deep.values()]

    def blogs_watched(self) -> int:
        return len(self._watches)

    def close(self) -> None:
        """At shutdown: stop watches still being set up (the relay is closing too)."""
        for task in self._watches.values():
            task.cancel()
        self._watches.clear()

    def current(self, key: Key) -> Entry | None:
        """The entry for *key* if it shows its blog's present state (the hit path: no I/O, no await)."""
        entry = self._front.get(key) or self._deep.get(key)
        if entry is None or self._relay.position(entry.blog) != (entry.seq, entry.epoch):
            return None
        (self._front if entry.front else self._deep).move_to_end(key)
        self.hits += 1
        return entry

    async def get(self, key: Key, load: Callable[[], Awaitable[Rendered]], *, front: bool) -> Entry:
        """The current entry for *key*, loading it (once for all concurrent callers) when there is none.

        Raises what *load* raises (BlogNotFound for an unknown blog); nothing is kept then.
        """
        entry = self.current(key)
        if entry is not None:
            return entry
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        return await run_once(self._loading, key, lambda: self._load(key, load, front))

    async def _load(self, key: Key, load: Callable[[], Awaitable[Rendered]], front: bool) -> Entry:
        rendered = await load()
        self.renders += 1
        entry = Entry(self, key, rendered, front)
        self._store(entry)
        watch = self._watches.get(entry.blog)
        if watch is not None and not watch.done():
            # A blog's first entry: give the new watch a moment, so the next request is a hit. Never
            # cancelled, and never long: a request does not hang on a subscription.
            await asyncio.wait({watch}, timeout=WATCH_WAIT)
        return entry

    def _store(self, entry: Entry) -> None:
        """Keep *entry*, replacing its variant's older state, unless it is inconsistent or too large."""
        if not entry.consistent or entry.size > self._limits[entry.front]:
            return
        table = self._front if entry.front else self._deep
        old = table.pop(entry.key, None)
        table[entry.key] = entry
        self._bytes[entry.front] += entry.size
        self._per_blog[entry.blog] = self._per_blog.get(entry.blog, 0) + 1
        if old is not None:
            self._bytes[old.front] -= old.size
            self._forget_blog(old.blog)
        self._hold(entry.blog)
        self._evict(entry.front)

    def grew(self, entry: Entry, added: int) -> None:
        """*entry* gained a compressed rendition of *added* bytes: count them, and evict if over budget."""
        table = self._front if entry.front else self._deep
        if table.get(entry.key) is not entry:
            return  # served once and never kept, or already replaced
        self._bytes[entry.front] += added
        self._evict(entry.front)

    def _evict(self, front: bool) -> None:
        table = self._front if front else self._deep
        while self._bytes[front] > self._limits[front] and table:
            _, old = table.popitem(last=False)
            self._bytes[front] -= old.size
            self._forget_blog(old.blog)

    def _forget_blog(self, blog: str) -> None:
        left = self._per_blog[blog] - 1
        if left:
            self._per_blog[blog] = left
        else:
            del self._per_blog[blog]
            self._release(blog)

    def _hold(self, blog: str) -> None:
        """Watch *blog* through the relay while the cache has entries for it, so its position moves.

        In the background: a request waits at most WATCH_WAIT for a subscription (and never hangs
        while the engine is away); until the watch is in place the position matches no entry, and
        requests render.
        """
        if blog not in self._watches:
            task = asyncio.ensure_future(self._relay.watch(blog))
            task.add_done_callback(_consume)
            self._watches[blog] = task

    def _release(self, blog: str) -> None:
        task = self._watches.pop(blog, None)
        if task is None:
            return

        def unwatch(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._relay.unwatch(blog)

        # Never cancelled: a watch cancelled while it syncs would stay counted in the relay.
        if task.done():
            unwatch(task)
        else:
            task.add_done_callback(unwatch)


def _consume(task: asyncio.Task[None]) -> None:
    """A watch that failed (the blog vanished, the relay closed) leaves nothing to do: entries just never match."""
    if not task.cancelled():
        task.exception()


async def consistent_read(engine: Engine, blog_id: str, read: Callable[[], Awaitable[T]]) -> tuple[Blog, T, bool]:
    """(blog, what *read* returned, consistent): the blog's state on both sides of *read*, so its seq is
    the state *read* saw when `consistent` is True.

    For reads the engine cannot make together with the blog (a page in another order or from a
    cursor). After READ_ATTEMPTS changes in between, the last result is returned with `consistent`
    False: the caller serves it once and keeps nothing.
    """
    for _ in range(READ_ATTEMPTS - 1):
        before = await engine.get_blog(blog_id)
        result = await read()
        after = await engine.get_blog(blog_id)
        if (before.epoch, before.seq) == (after.epoch, after.seq):
            return after, result, True
    before = await engine.get_blog(blog_id)
    result = await read()
    after = await engine.get_blog(blog_id)
    return before, result, (before.epoch, before.seq) == (after.epoch, after.seq)
