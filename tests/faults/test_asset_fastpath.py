"""The widget's files of the current version are answered from memory by `livepush serve`'s HTTP protocol.

A reader's first visit loads the stylesheet, the script and the modules it imports; these come from
the in-memory table (server.pages.assets.AssetTable) as cached pages do, with no ASGI request. This
runs the real `serve` command, whose protocol classes and logging are what decide the path: the
table's strong ETag (a hash of the bytes) tells its answers from StaticFiles' (size and mtime).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import Node

ROOT = Path(__file__).resolve().parents[2]


async def test_current_assets_come_from_memory_with_a_content_tag_and_304(tmp_path: Path) -> None:
    node = Node(None, tmp_path)
    await node.start()
    try:
        async with httpx.AsyncClient(base_url=node.base, timeout=5) as client:
            created = await client.post("/api/blogs", json={"id": "b1", "title": "Blog"},
                                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert created.status_code == 201
            found = re.search(r'src="(/client/v/[0-9a-f]{16})/widget\.js"', (await client.get("/blogs/b1")).text)
            assert found is not None
            path = f"{found.group(1)}/lib/liveblog.js"
            body = (ROOT / "client_demo" / "lib" / "liveblog.js").read_bytes()
            tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'

            first = await client.get(path)
            assert (first.status_code, first.content, first.headers["etag"]) == (200, body, tag)
            assert first.headers["content-type"] == "text/javascript; charset=utf-8"
            assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert first.headers["x-content-type-options"] == "nosniff" and first.headers["x-request-id"]
            again = await client.get(path, headers={"If-None-Match": tag})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)
            head = await client.head(path)
            assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(body)))

            # A cross-origin load needs CORS: the stack answers it (StaticFiles), with the same bytes.
            cross = await client.get(path, headers={"Origin": "http://localhost:9"})
            assert cross.status_code == 200 and cross.content == body and cross.headers["etag"] != tag
            assert cross.headers["access-control-allow-origin"] == "http://localhost:9"
            # Another version (a page from before a deploy) is today's file, revalidated, from the stack.
            stale = await client.get("/client/v/0000000000000000/lib/liveblog.js")
            assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    finally:
        node.kill()
