"""Every history and paging request does bounded work: paged `/events`, streamed replays, write deadlines,
and cursors among posts that share one `published_at`. Over a real uvicorn, on both engines."""

from __future__ import annotations

from typing import Any

from server.paging import encode_cursor
from tests.conftest import LiveServer

SAME_TIME = "2024-05-01T10:00:00Z"
SAME_MS = 1714557600000


async def _walk(server: LiveServer, order: str, limit: int, cursor: str | None = None) -> list[str]:
    seen: list[str] = []
    while True:
        query = f"order={order}&limit={limit}" + (f"&before={cursor}" if cursor else "")
        response = await server.http.get(f"/api/blogs/b1/posts?{query}")
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [post["id"] for post in page["posts"]]
        cursor = page["next"]
        if cursor is None:
            return seen


async def test_pages_among_posts_of_one_time_walk_each_once_and_forged_cursors_land_in_place(
        server: LiveServer, blog: dict[str, Any]) -> None:
    """Posts sharing one published_at page by id in both orders, each once; a cursor naming an id that does not
    exist (forged) starts right after where that id would sit, in both sections."""
    ids = []
    for i in range(30):
        response = await server.publish(headline=f"P{i}", published_at=SAME_TIME, pinned=i % 10 == 0)
        ids.append((response.json()["post"]["id"], i % 10 == 0))
    pinned = sorted(post_id for post_id, is_pinned in ids if is_pinned)
    unpinned = sorted(post_id for post_id, is_pinned in ids if not is_pinned)
    assert await _walk(server, "newest", 4) == pinned[::-1] + unpinned[::-1]
    assert await _walk(server, "oldest", 7) == pinned + unpinned
    middle = unpinned[len(unpinned) // 2]
    forged = middle[:-1] + ("0" if middle[-1] != "0" else "1")  # not an id of this blog, next to one
    assert forged not in unpinned
    cursor = encode_cursor((1, SAME_MS, forged))
    assert await _walk(server, "newest", 5, cursor) == [p for p in unpinned[::-1] if p < forged]
    assert await _walk(server, "oldest", 5, cursor) == [p for p in unpinned if p > forged]
    before_all = encode_cursor((0, SAME_MS, "zzzz"))
    assert await _walk(server, "newest", 50, before_all) == pinned[::-1] + unpinned[::-1]
    assert await _walk(server, "oldest", 50, encode_cursor((1, SAME_MS + 1, "a"))) == []
