"""Quotas and bounds over a real uvicorn, on both engines: full blogs, too many blogs, the paged blog list,
history bounded by bytes, and the snapshot cache's byte bound."""

from __future__ import annotations

from typing import Any

from server.auth import mint_token
from tests.conftest import JWT_SECRET, ServerFactory
from tests.e2e.test_api import assert_problem, assert_unchanged


async def test_a_full_blog_refuses_new_posts_with_409_naming_the_limit(start_server: ServerFactory) -> None:
    """Past LIVEPUSH_MAX_POSTS_PER_BLOG a publish is 409 `too_many_posts`; nothing changes, no event is sent."""
    server = await start_server(max_posts_per_blog=2)
    await server.create_blog("b1")
    token = mint_token(JWT_SECRET, ["b1"], 600, subject="desk")
    async with server.reader("b1") as reader:
        assert (await reader.next_event())["type"] == "snapshot"
        for headline in ("one", "two"):
            assert (await server.publish("b1", headline=headline)).status_code == 201
        full = await server.blog("b1")
        for auth in (server.auth(), server.auth(token)):
            problem = assert_problem(await server.publish("b1", headers=auth, headline="three"), 409)
            assert (problem["code"], problem["limit"], problem["max"]) == ("too_many_posts",
                                                                          "LIVEPUSH_MAX_POSTS_PER_BLOG", 2)
            assert "2 posts" in problem["detail"]
        await assert_unchanged(server, full)
        first = (await server.http.get("/api/blogs/b1/posts?limit=1")).json()["posts"][0]
        edited = await server.http.patch(f"/api/blogs/b1/posts/{first['id']}", json={"headline": "edited"},
                                         headers=server.auth())
        assert edited.status_code == 200
        events = await reader.events(3)
        assert [(e["type"], e["seq"]) for e in events] == [("post.created", 1), ("post.created", 2),
                                                          ("post.updated", 3)]


async def test_past_the_blog_quota_a_new_blog_is_409_and_none_is_made(start_server: ServerFactory) -> None:
    """A `*` token cannot make more than LIVEPUSH_MAX_BLOGS blogs: 409 `too_many_blogs`, the list unchanged."""
    server = await start_server(max_blogs=2)
    star = server.auth(mint_token(JWT_SECRET, ["*"], 600, subject="leaked"))
    for blog_id in ("a1", "a2"):
        assert (await server.http.post("/api/blogs", json={"id": blog_id, "title": "T"}, headers=star)).status_code \
            == 201
    for auth in (star, server.auth()):
        response = await server.http.post("/api/blogs", json={"id": "a3", "title": "T"}, headers=auth)
        problem = assert_problem(response, 409)
        assert (problem["code"], problem["limit"], problem["max"]) == ("too_many_blogs", "LIVEPUSH_MAX_BLOGS", 2)
    assert assert_problem(await server.http.get("/api/blogs/a3"), 404)["code"] == "unknown_blog"
    listed = (await server.http.get("/api/blogs")).json()
    assert [b["id"] for b in listed["blogs"]] == ["a1", "a2"] and listed["next"] is None
    # An existing id is still the conflict it always was.
    again = await server.http.post("/api/blogs", json={"id": "a1", "title": "T"}, headers=server.auth())
    assert assert_problem(again, 409, "id")["code"] == "blog_exists"


async def test_the_blog_list_is_paged_with_a_cursor(start_server: ServerFactory) -> None:
    """`GET /api/blogs?limit=&cursor=`: id order, `next` until the last page, bad parameters 422 naming them."""
    server = await start_server()
    ids = [f"blog-{i}" for i in range(5)]
    for blog_id in reversed(ids):
        await server.create_blog(blog_id)
    seen: list[str] = []
    url = "/api/blogs?limit=2"
    pages: list[dict[str, Any]] = []
    while True:
        response = await server.http.get(url)
        assert response.status_code == 200
        page = response.json()
        pages.append(page)
        seen += [b["id"] for b in page["blogs"]]
        if page["next"] is None:
            break
        url = f"/api/blogs?limit=2&cursor={page['next']}"
    assert seen == ids and [len(p["blogs"]) for p in pages] == [2, 2, 1]
    assert all(set(b) >= {"id", "seq", "epoch", "post_count"} for p in pages for b in p["blogs"])
    whole = (await server.http.get("/api/blogs")).json()
    assert [b["id"] for b in whole["blogs"]] == ids and whole["next"] is None
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("limit=", "limit"),
                         ("cursor=Not%20a%20slug!", "cursor"), ("cursor=%00", "cursor")):
        assert_problem(await server.http.get(f"/api/blogs?{query}"), 422, field)


async def test_history_bounded_by_bytes_sends_older_resumes_to_a_snapshot(start_server: ServerFactory) -> None:
    """With LIVEPUSH_HISTORY_BYTES=64 KiB, edits of a 30 KB post keep the newest events only: older positions
    get 410 on /events and a snapshot on the socket, never a partial replay; the newest still replays."""
    server = await start_server(history_bytes=64 * 1024)
    blog = await server.create_blog("b1")
    created = await server.publish("b1", body="<p>" + "x" * 30_000 + "</p>")
    post_id = created.json()["post"]["id"]
    for i in range(4):
        response = await server.http.patch(f"/api/blogs/b1/posts/{post_id}", json={"headline": f"edit {i}"},
                                           headers=server.auth())
        assert response.status_code == 200
    top = (await server.blog("b1"))["seq"]
    assert top == 5
    gone = await server.http.get(f"/api/blogs/b1/events?since=1&epoch={blog['epoch']}")
    assert assert_problem(gone, 410, "since")["code"] == "events_gone"
    recent = (await server.http.get(f"/api/blogs/b1/events?since={top - 1}&epoch={blog['epoch']}")).json()
    assert [e["seq"] for e in recent["events"]] == [top]
    async with server.reader("b1", since=1, epoch=blog["epoch"]) as reader:
        first = await reader.next_event()
        assert (first["type"], first["seq"]) == ("snapshot", top)
        assert first["posts"][0]["headline"] == "edit 3"
    async with server.reader("b1", since=top - 1, epoch=blog["epoch"]) as reader:
        replayed = await reader.next_event()
        assert (replayed["type"], replayed["seq"]) == ("post.updated", top)


async def test_the_snapshot_cache_stays_within_its_byte_bound(start_server: ServerFactory) -> None:
    """One reader on each of 12 blogs: the cache holds the most recent snapshots within
    LIVEPUSH_SNAPSHOT_CACHE_BYTES; an evicted blog is read again, a cached one is not."""
    server = await start_server(snapshot_cache_bytes=6000)
    for i in range(12):
        await server.create_blog(f"b{i:02d}")
        assert (await server.publish(f"b{i:02d}", body="<p>" + "z" * 1000 + "</p>")).status_code == 201
    feeds = server.services.feeds
    for i in range(12):
        async with server.reader(f"b{i:02d}") as reader:
            assert (await reader.next_event())["type"] == "snapshot"
        count, size = feeds.cached_snapshots
        assert size <= 6000 and count <= 3
    assert feeds.snapshots_encoded == 12
    async with server.reader("b11") as reader:  # the most recent: still cached
        assert (await reader.next_event())["seq"] == 1
    assert feeds.snapshots_encoded == 12
    async with server.reader("b00") as reader:  # evicted long ago: read again, complete
        snapshot = await reader.next_event()
        assert (snapshot["seq"], len(snapshot["posts"])) == (1, 1)
    assert feeds.snapshots_encoded == 13


async def test_the_index_page_lists_the_most_recently_updated_blogs_first(start_server: ServerFactory) -> None:
    """`GET /` reads one bounded page of blogs, most recently updated first (not every blog, sorted per view)."""
    server = await start_server()
    for blog_id in ("older", "newer", "newest"):
        await server.create_blog(blog_id)
    assert (await server.publish("older", headline="Fresh news")).status_code == 201
    page = await server.http.get("/")
    assert page.status_code == 200
    html = page.text
    assert html.index("/blogs/older") < html.index("/blogs/newest") < html.index("/blogs/newer")
