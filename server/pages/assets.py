"""The widget's files (client_demo/) under URLs that change when any of them changes.

`/client/v/<version>/...` serves client_demo/ with `Cache-Control: public, max-age=31536000,
immutable`, where <version> is a hash of every file in the directory: pages link these URLs, so
a deploy that changes any asset changes the URL and no browser or CDN keeps an old copy. The
widget's ES modules import each other by relative URL, so they all load under the same version.
A request for another version (a page rendered before a deploy) still gets today's file, but
with `no-cache`, so a wrong pairing is never stored for long. Plain `/client/...` (the embed
snippet other sites paste) is revalidated on every use (`no-cache` with StaticFiles' ETag).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"


def content_version(directory: Path) -> str:
    """A short hash of the names and bytes of every file under *directory*."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class Assets:
    """StaticFiles plus Cache-Control: immutable under the current version, revalidated otherwise."""

    def __init__(self, directory: Path, version: str | None = None) -> None:
        self._files = StaticFiles(directory=directory)
        self.version = version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        current = self.version is not None and scope.get("path_params", {}).get("version") == self.version
        policy = IMMUTABLE if current else REVALIDATE

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                message["headers"] = [*message.get("headers", []), (b"cache-control", policy)]
            await send(message)

        await self._files(scope, receive, send_with_policy)
