"""The in-process engine's ordered posts agree with the reference order of server.paging, page by page."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from server.engine.post_index import PostIndex
from server.model import Post
from server.paging import Order, Position, paginate, position


def _post(post_id: str, minutes: int, pinned: bool = False) -> Post:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return Post(id=post_id, headline=post_id, published_at=at, updated_at=at, pinned=pinned)


def _walk(index: PostIndex, order: Order, size: int) -> list[list[str]]:
    pages, before = [], None
    while True:
        page = index.page(size, order, before)
        pages.append([p.id for p in page.posts])
        if page.next is None:
            return pages
        before = position(page.posts[-1])


def _reference(posts: list[Post], order: Order, size: int) -> list[list[str]]:
    pages, before = [], None
    while True:
        page = paginate(posts, size, order, before)
        pages.append([p.id for p in page.posts])
        if page.next is None:
            return pages
        before = position(page.posts[-1])


def test_pages_match_the_reference_order_through_adds_moves_and_removals() -> None:
    """Ties on time, pinned posts, edits that move a post and deletes: every page equals a full sort's."""
    rng = random.Random(7)
    index = PostIndex([_post(f"seed{i}", i % 3) for i in range(5)])
    for step in range(400):
        action = rng.random()
        if action < 0.6 or len(index) < 3:
            index.put(_post(f"p{step:03d}", rng.randrange(40), pinned=rng.random() < 0.15))
        elif action < 0.8:
            moved = rng.choice(list(index.posts))
            index.put(_post(moved, rng.randrange(40), pinned=rng.random() < 0.3))
        else:
            index.remove(rng.choice(list(index.posts)))
        if step % 50 == 0:
            posts = list(index.posts.values())
            for order in ("newest", "oldest"):
                for size in (1, 4, 1000):
                    assert _walk(index, order, size) == _reference(posts, order, size)


def test_a_cursor_between_posts_or_past_the_end_continues_in_order() -> None:
    """A cursor need not name a post that still exists (it may have been deleted since)."""
    posts = [_post("a", 1), _post("b", 2), _post("c", 3, pinned=True), _post("d", 4)]
    index = PostIndex(posts)
    gone: Position = (1, position(posts[1])[1], "bb")
    assert [p.id for p in index.page(10, "newest", gone).posts] == [
        p.id for p in paginate(posts, 10, "newest", gone).posts] == ["b", "a"]
    assert [p.id for p in index.page(10, "oldest", gone).posts] == ["d"]
    pinned_cursor: Position = (0, 0, "z")
    assert [p.id for p in index.page(10, "newest", pinned_cursor).posts] == ["d", "b", "a"]
    assert index.page(10, "oldest", (1, 2**62, "z")).posts == []
