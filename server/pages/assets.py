"""The widget's files (client_demo/) under URLs that change when any of them changes.

`/client/v/<version>/...` serves client_demo/ with `Cache-Control: public, max-age=31536000,
immutable`, where <version> is a hash of every file in the directory: pages link these URLs, so
a deploy that changes any asset changes the URL and no browser or CDN keeps an old copy. The
widget's ES modules import each other by relative URL, so they all load under the same version.
A request for another version (a page rendered before a deploy) still gets today's file, but
with `no-cache`, so a wrong pairing is never stored for long. Plain `/client/...` (the embed
snippet other sites paste) is revalidated on every use (`no-cache` with StaticFiles' ETag).

Under the current version the files are also kept in memory (`AssetTable`, ~150 KB): a reader's
first visit loads the stylesheet, the script and the modules it imports, and the HTTP protocol
answers those from the table as it answers cached pages (server.pages.fastpath), with no ASGI
request. Anything else (another version, a cross-origin load, which needs CORS) goes to StaticFiles.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from server.headers import security_headers

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


@dataclass(frozen=True, slots=True)
class StaticAsset:
    """One file of the current version, with its header lines ready to write (without status line or request id)."""

    body: bytes
    etag: bytes
    head: bytes  # 200
    not_modified: bytes  # 304


class AssetTable:
    """The files of *directory* under `/client/v/<version>/`, read once, keyed by the raw request path."""

    def __init__(self, directory: Path, version: str) -> None:
        self.prefix = b"/client/v/" + version.encode() + b"/"
        self._files: dict[bytes, StaticAsset] = {}
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            body = path.read_bytes()
            guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            media = (guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")).encode()
            etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
            common = [(b"etag", etag), (b"cache-control", IMMUTABLE), *security_headers(media)]
            self._files[self.prefix + path.relative_to(directory).as_posix().encode()] = StaticAsset(
                body, etag, _lines([(b"content-type", media), (b"content-length", b"%d" % len(body)), *common]),
                _lines(common))

    def get(self, path: bytes) -> StaticAsset | None:
        return self._files.get(path)

    def __len__(self) -> int:
        return len(self._files)


def _lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)
