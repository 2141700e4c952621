"""Post order and cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.model import Post
from server.paging import BadCursor, decode_cursor, paginate


def _post(post_id: str, minutes: int, pinned: bool = False) -> Post:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return Post(id=post_id, headline=post_id, published_at=at, updated_at=at, pinned=pinned)


def test_pages_walk_every_post_once_in_order() -> None:
    posts = [_post(f"p{i:02d}", i % 7, pinned=i == 3) for i in range(20)]
    for order in ("newest", "oldest"):
        seen: list[str] = []
        cursor = None
        while True:
            page = paginate(posts, 6, order, decode_cursor(cursor) if cursor else None)
            seen += [p.id for p in page.posts]
            cursor = page.next
            if cursor is None:
                break
        assert sorted(seen) == sorted(p.id for p in posts) and len(seen) == 20
        assert seen[0] == "p03"


def test_ties_on_time_are_broken_by_id_in_both_directions() -> None:
    posts = [_post("b", 0), _post("a", 0), _post("c", 0)]
    assert [p.id for p in paginate(posts, 10, "newest", None).posts] == ["c", "b", "a"]
    assert [p.id for p in paginate(posts, 10, "oldest", None).posts] == ["a", "b", "c"]


@pytest.mark.parametrize("cursor", ["", "!!!", "e30", "WzEsMiwzXQ", "WzIsMCwiYSJd"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor)
