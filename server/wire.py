"""The only place events and stream messages are encoded (orjson), once per process.

A `Frame` is one encoded message. The same Frame object is handed to every reader of a
blog: its WebSocket text, its complete WebSocket frame (header included, for the direct write
path) and its SSE form are each computed once, on first use, and then shared, so fan-out cost
per reader never includes serialization or framing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from server.model import Blog, Post, format_time


class Frame:
    """One encoded message: `data` is its JSON; `text` and `sse` are derived once, lazily."""

    __slots__ = ("_sse", "_state", "_text", "_ws", "blog", "data", "epoch", "seq")

    def __init__(self, blog: str, seq: int, data: bytes, epoch: str = "") -> None:
        self.blog = blog
        self.seq = seq
        self.data = data
        self.epoch = epoch
        self._text: str | None = None
        self._sse: bytes | None = None
        self._ws: bytes | None = None
        self._state: tuple[str, bool] | None = None

    @property
    def state(self) -> tuple[str, bool]:
        """(what state the event is about, whether a later event about it replaces this one whole).

        `("post:<id>", True)` for post.updated (it carries the whole post), `("post:<id>", False)`
        for post.deleted, `("blog", True)` for blog.updated, `("", False)` for everything else:
        new posts are never conflated. Decoded once, only when a lagging reader conflates.
        """
        if self._state is None:
            self._state = ("", False)
            try:
                message = orjson.loads(self.data)
            except orjson.JSONDecodeError:
                return self._state
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "post.updated":
                self._state = ("post:" + str(message.get("post", {}).get("id")), True)
            elif kind == "post.deleted":
                self._state = ("post:" + str(message.get("post_id")), False)
            elif kind == "blog.updated":
                self._state = ("blog", True)
        return self._state

    @property
    def text(self) -> str:
        """The message as a WebSocket text frame payload."""
        if self._text is None:
            self._text = self.data.decode()
        return self._text

    @property
    def ws(self) -> bytes:
        """The message as one unmasked WebSocket text frame, ready for a server's socket."""
        if self._ws is None:
            # Identical for every reader because permessage-deflate is off (see server.cli).
            self._ws = WsFrame(Opcode.TEXT, self.data).serialize(mask=False)
        return self._ws

    @property
    def sse(self) -> bytes:
        """The message as one server-sent event.

        Its `id:` is `<epoch>:<seq>`, so the Last-Event-ID any EventSource sends on its own reconnect
        resumes exactly, in the history it counted in. Pings and notices (no epoch) carry no id, so
        they never move a client's Last-Event-ID.
        """
        if self._sse is None:
            if self.epoch:
                head = b"id: %s:%d\n" % (self.epoch.encode(), self.seq)
            else:
                head = b"id: %d\n" % self.seq if self.seq > 0 else b""
            self._sse = head + b"data: " + self.data + b"\n\n"
        return self._sse

    def __repr__(self) -> str:
        return f"Frame(blog={self.blog!r}, seq={self.seq}, {len(self.data)} bytes)"


PING = Frame("", 0, b'{"type":"ping"}')


def conflated(blog_id: str, seqs: Sequence[int]) -> Frame:
    """The notice a lagging reader gets in place of superseded state events: their seqs, never to come."""
    return Frame(blog_id, 0, dumps({"type": "conflated", "blog": blog_id, "seqs": list(seqs)}))


def dumps(value: Any) -> bytes:
    """Encode *value* as compact JSON."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Decode strict JSON (no NaN, no lone surrogates, bounded depth); raises ValueError."""
    return orjson.loads(data)


def blog_json(blog: Blog) -> dict[str, Any]:
    return blog.model_dump(mode="json")


def post_json(post: Post) -> dict[str, Any]:
    return post.model_dump(mode="json")


def event(kind: str, blog_id: str, seq: int, post_count: int, updated_at: datetime,
          key: str, value: Any, epoch: str = "") -> Frame:
    """Encode one event of the contract: `post.created`, `post.updated`, `post.deleted`, `blog.updated`."""
    if isinstance(value, Post):
        value = post_json(value)
    elif isinstance(value, Blog):
        value = blog_json(value)
    data = dumps({"type": kind, "blog": blog_id, "seq": seq, "post_count": post_count,
                  "updated_at": format_time(updated_at), key: value})
    return Frame(blog_id, seq, data, epoch)


def snapshot(blog: Blog, posts: Sequence[Post], has_more: bool) -> Frame:
    """Encode the snapshot a new reader starts from (current at `blog.seq`)."""
    data = dumps({"type": "snapshot", "blog": blog_json(blog), "posts": [post_json(p) for p in posts],
                  "has_more": has_more, "seq": blog.seq, "epoch": blog.epoch})
    return Frame(blog.id, blog.seq, data, blog.epoch)


def event_list(frames: Iterable[Frame], seq: int, epoch: str, more: bool = False) -> bytes:
    """`{"events": [...], "seq": n, "epoch": "...", "has_more": bool, "next": n or null}` from encoded events.

    `next` is the `since` of the following page: `seq` while more events follow, else null.
    """
    tail = b',"has_more":true,"next":%d}' % seq if more else b',"has_more":false,"next":null}'
    return b'{"events":[' + b",".join(f.data for f in frames) + b'],"seq":%d,"epoch":%b' % (seq, dumps(epoch)) + tail
