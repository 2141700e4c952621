"""The HTTP API over a real uvicorn: every endpoint, every error status of the contract, nothing changed on error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.auth import mint_token
from tests.conftest import ADMIN_TOKEN, JWT_SECRET, LiveServer, ServerFactory

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["code"]
    if field is not None:
        assert body["field"] == field, body
    return body


async def assert_unchanged(server: LiveServer, blog: dict[str, Any]) -> None:
    now = await server.blog(blog["id"])
    assert (now["seq"], now["post_count"], now["updated_at"]) == (blog["seq"], blog["post_count"], blog["updated_at"])


# blogs


async def test_create_list_get_and_update_a_blog(server: LiveServer) -> None:
    created = await server.create_blog("russia-ukraine", title="Russia-Ukraine news", authors=["Chris Lau"],
                                       source="CNN", description="Live updates")
    assert created["seq"] == 0 and created["post_count"] == 0 and created["status"] == "live"
    assert created["timezone"] == "America/New_York" and created["epoch"]
    assert created["created_at"].endswith("Z") and created["updated_at"] == created["created_at"]
    listed = (await server.http.get("/api/blogs")).json()
    assert [b["id"] for b in listed["blogs"]] == ["russia-ukraine"]
    assert await server.blog("russia-ukraine") == created
    response = await server.http.patch("/api/blogs/russia-ukraine", headers=server.auth(),
                                       json={"title": "New title", "authors": ["A", "B"], "timezone": "Europe/Kyiv"})
    assert response.status_code == 200
    updated = response.json()
    assert (updated["title"], updated["authors"], updated["timezone"], updated["seq"]) == \
        ("New title", ["A", "B"], "Europe/Kyiv", 1)
    assert updated["description"] == "Live updates"
    assert updated["updated_at"] >= created["updated_at"]


async def test_an_existing_blog_id_is_a_conflict(server: LiveServer, blog: dict[str, Any]) -> None:
    response = await server.http.post("/api/blogs", json={"id": "b1", "title": "Again"}, headers=server.auth())
    assert_problem(response, 409, "id")
    assert (await server.blog())["title"] == "Test blog"


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "No id"}, "id"),
    ({"id": "Bad_Id", "title": "x"}, "id"),
    ({"id": "a" * 65, "title": "x"}, "id"),
    ({"id": "ok", "title": ""}, "title"),
    ({"id": "ok", "title": "x" * 301}, "title"),
    ({"id": "ok", "title": "line\nbreak"}, "title"),
    ({"id": "ok", "title": "x", "authors": ["a"] * 51}, "authors"),
    ({"id": "ok", "title": "x", "authors": ["a" * 101]}, "authors.0"),
    ({"id": "ok", "title": "x", "timezone": "Mars/Olympus"}, "timezone"),
    ({"id": "ok", "title": "x", "status": "paused"}, "status"),
    ({"id": "ok", "title": "x", "description": "d" * 2001}, "description"),
    ({"id": "ok", "title": "x", "colour": "red"}, "colour"),
    ({"id": "ok", "title": 5}, "title"),
])
async def test_invalid_blogs_are_refused_naming_the_field(server: LiveServer, body: dict[str, Any],
                                                          field: str) -> None:
    response = await server.http.post("/api/blogs", json=body, headers=server.auth())
    problem = assert_problem(response, 422, field)
    assert problem["errors"][0]["field"] == field
    assert (await server.http.get("/api/blogs")).json() == {"blogs": [], "next": None}


async def test_unknown_blog_is_404(server: LiveServer) -> None:
    for method, path in [("GET", "/api/blogs/nope"), ("GET", "/api/blogs/nope/posts"),
                         ("GET", "/api/blogs/nope/posts/p1"), ("GET", "/api/blogs/nope/events?since=0"),
                         ("GET", "/api/blogs/NOT_A_SLUG")]:
        assert_problem(await server.http.request(method, path), 404)
    assert_problem(await server.publish("nope"), 404)
    response = await server.http.patch("/api/blogs/nope", json={"title": "x"}, headers=server.auth())
    assert_problem(response, 404)


async def test_an_ended_blog_refuses_new_posts(server: LiveServer, blog: dict[str, Any]) -> None:
    post = (await server.publish(headline="Before the end")).json()["post"]
    ended = await server.http.patch("/api/blogs/b1", json={"status": "ended"}, headers=server.auth())
    assert ended.json()["status"] == "ended"
    before = await server.blog()
    assert_problem(await server.publish(headline="Too late"), 409, "status")
    await assert_unchanged(server, before)
    # A correction on an existing post is still possible after the end.
    fixed = await server.http.patch(f"/api/blogs/b1/posts/{post['id']}", json={"correction": "A name was misspelled."},
                                    headers=server.auth())
    assert fixed.status_code == 200


# posts


async def test_publish_read_edit_and_delete_a_post(server: LiveServer, blog: dict[str, Any]) -> None:
    response = await server.publish(headline="Kick-off", byline="From CNN's Anna", key_event=True,
                                    body='<p>Hello <a href="https://example.com">link</a></p>')
    assert response.status_code == 201
    created = response.json()
    post = created["post"]
    assert created["seq"] == 1 and post["version"] == 1 and post["key_event"] is True
    assert response.headers["location"] == f"/api/blogs/b1/posts/{post['id']}"
    assert response.headers["etag"] == '"1"'
    assert post["body"] == '<p>Hello <a href="https://example.com" rel="noopener noreferrer">link</a></p>'
    fetched = await server.http.get(f"/api/blogs/b1/posts/{post['id']}")
    assert fetched.json() == post and fetched.headers["etag"] == '"1"'
    edited = await server.http.patch(f"/api/blogs/b1/posts/{post['id']}", headers={**server.auth(), "If-Match": '"1"'},
                                     json={"headline": "Kick-off (updated)", "correction": "Time corrected."})
    assert edited.status_code == 200 and edited.headers["etag"] == '"2"'
    assert edited.json()["seq"] == 2
    assert edited.json()["post"]["headline"] == "Kick-off (updated)" and edited.json()["post"]["byline"] == post["byline"]
    current = await server.blog()
    assert (current["post_count"], current["seq"]) == (1, 2)
    deleted = await server.http.delete(f"/api/blogs/b1/posts/{post['id']}", headers=server.auth())
    assert deleted.status_code == 200 and deleted.json() == {"seq": 3}
    assert_problem(await server.http.get(f"/api/blogs/b1/posts/{post['id']}"), 404)
    assert (await server.blog())["post_count"] == 0


async def test_published_at_defaults_to_now_and_may_be_set(server: LiveServer, blog: dict[str, Any]) -> None:
    explicit = (await server.publish(headline="x", published_at="2023-07-26T06:34:00-04:00")).json()["post"]
    assert explicit["published_at"] == "2023-07-26T10:34:00Z"
    implicit = (await server.publish(headline="y")).json()["post"]
    assert implicit["published_at"] == implicit["updated_at"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "headline"),
    ({"headline": ""}, "headline"),
    ({"headline": "   "}, "headline"),
    ({"headline": "h" * 301}, "headline"),
    ({"headline": "ok", "byline": "b" * 301}, "byline"),
    ({"headline": "ok", "correction": "c" * 501}, "correction"),
    ({"headline": "ok", "body": "<p>" + "x" * 70000 + "</p>"}, "body"),
    ({"headline": "ok", "published_at": "yesterday"}, "published_at"),
    ({"headline": "ok", "published_at": "2023-07-26T06:34:00"}, "published_at"),
    ({"headline": "ok", "published_at": 0}, "published_at"),
    ({"headline": "ok", "published_at": "0001-01-01T00:00:00+10:40"}, "published_at"),
    ({"headline": "ok", "published_at": "0055-07-04T09:17:41Z"}, "published_at"),
    ({"headline": "ok", "pinned": "yes"}, "pinned"),
    ({"headline": "ok", "key_event": 1}, "key_event"),
    ({"headline": "ok", "version": 7}, "version"),
    ({"headline": "bell\u0007"}, "headline"),
    ({"headline": ["a"]}, "headline"),
])
async def test_invalid_posts_are_refused_naming_the_field(server: LiveServer, blog: dict[str, Any],
                                                          body: dict[str, Any], field: str) -> None:
    response = await server.http.post("/api/blogs/b1/posts", json=body, headers=server.auth())
    assert_problem(response, 422, field)
    await assert_unchanged(server, blog)


async def test_an_edit_needs_at_least_one_field_and_valid_values(server: LiveServer, blog: dict[str, Any]) -> None:
    post = (await server.publish()).json()["post"]
    url = f"/api/blogs/b1/posts/{post['id']}"
    assert_problem(await server.http.patch(url, json={}, headers=server.auth()), 422)
    assert_problem(await server.http.patch(url, json={"headline": None}, headers=server.auth()), 422, "headline")
    assert_problem(await server.http.patch(url, json={"id": "other"}, headers=server.auth()), 422, "id")
    assert (await server.http.get(url)).json() == post


@pytest.mark.parametrize(("raw", "content_type", "status"), [
    (b'{"headline":', "application/json", 400),
    (b"", "application/json", 400),
    (b'{"headline": NaN}', "application/json", 400),
    (b'{"headline": "\\ud800"}', "application/json", 400),
    (b'{"headline": "\xff"}', "application/json", 400),
    (b"[" * 100_000, "application/json", 400),
    (b'["a list"]', "application/json", 422),
    (b'{"headline": "ok"}', "text/plain", 415),
    (b"headline=ok", "application/x-www-form-urlencoded", 415),
    (b'{"headline": "ok"}', "application/json; charset=latin-1", 415),
])
async def test_bodies_that_are_not_json_objects_are_refused(server: LiveServer, blog: dict[str, Any], raw: bytes,
                                                            content_type: str, status: int) -> None:
    response = await server.http.post("/api/blogs/b1/posts", content=raw,
                                      headers={**server.auth(), "Content-Type": content_type})
    assert_problem(response, status)
    await assert_unchanged(server, blog)


async def test_a_body_over_the_limit_is_413_with_or_without_length(start_server: ServerFactory) -> None:
    server = await start_server(max_body_bytes=4096)
    blog = await server.create_blog("b1")
    big = b'{"headline": "x", "body": "' + b"a" * 5000 + b'"}'
    headers = {**server.auth(), "Content-Type": "application/json"}
    assert_problem(await server.http.post("/api/blogs/b1/posts", content=big, headers=headers), 413)

    async def chunks() -> Any:
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    assert_problem(await server.http.post("/api/blogs/b1/posts", content=chunks(), headers=headers), 413)
    await assert_unchanged(server, blog)


# auth


async def test_writes_need_a_valid_token(server: LiveServer, blog: dict[str, Any]) -> None:
    cases = [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": ADMIN_TOKEN},
             {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}]
    for headers in cases:
        response = await server.http.post("/api/blogs/b1/posts", json={"headline": "x"}, headers=headers)
        assert_problem(response, 401, "Authorization")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await server.http.post("/api/blogs", json={"id": "b2", "title": "x"}), 401)
    assert_problem(await server.http.delete("/api/blogs/b1/posts/x"), 401)
    await assert_unchanged(server, blog)


async def test_a_scoped_token_writes_only_its_blogs(server: LiveServer, blog: dict[str, Any]) -> None:
    other = await server.create_blog("b2")
    token = mint_token(JWT_SECRET, ["b1"], 3600)
    assert (await server.publish("b1", headers=server.auth(token))).status_code == 201
    assert_problem(await server.publish("b2", headers=server.auth(token)), 403, "Authorization")
    response = await server.http.post("/api/blogs", json={"id": "b3", "title": "x"}, headers=server.auth(token))
    assert_problem(response, 403, "id")
    await assert_unchanged(server, other)
    everything = mint_token(JWT_SECRET, ["*"], 3600)
    assert (await server.publish("b2", headers=server.auth(everything))).status_code == 201


@pytest.mark.parametrize("case", ["expired", "wrong_secret", "wrong_audience", "alg_none", "no_blogs"])
async def test_bad_scoped_tokens_are_401(server: LiveServer, blog: dict[str, Any], case: str) -> None:
    import jwt

    token = {
        "expired": lambda: mint_token(JWT_SECRET, ["b1"], 60, now=0),
        "wrong_secret": lambda: mint_token("another-secret-0123456789-0123456789-xyz", ["b1"], 3600),
        "wrong_audience": lambda: mint_token(JWT_SECRET, ["b1"], 3600, audience="other-service"),
        "alg_none": lambda: jwt.encode({"sub": "x", "aud": "livepush", "iat": 0, "exp": 2**40, "blogs": ["*"]},
                                       None, algorithm="none"),
        "no_blogs": lambda: mint_token(JWT_SECRET, [], 3600),
    }[case]()
    assert_problem(await server.publish(headers=server.auth(token)), 401, "Authorization")
    await assert_unchanged(server, blog)


# idempotency and concurrency control


async def test_a_retried_publish_returns_the_first_result(server: LiveServer, blog: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "5f1c0a2e-retry-1"}
    first = await server.publish(headers=key, headline="Once")
    again = await server.publish(headers=key, headline="Once")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert (await server.blog())["post_count"] == 1
    reused = await server.publish(headers=key, headline="Something else")
    assert_problem(reused, 422, "Idempotency-Key")
    other_key = await server.publish(headers={"Idempotency-Key": "another"}, headline="Once")
    assert other_key.json()["post"]["id"] != first.json()["post"]["id"]


async def test_idempotency_keys_are_scoped_to_the_caller(server: LiveServer, blog: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "shared-key"}
    admin = await server.publish(headers=key, headline="Same")
    token = mint_token(JWT_SECRET, ["b1"], 3600, subject="desk-2")
    scoped = await server.publish(headers={**key, **server.auth(token)}, headline="Same")
    assert scoped.status_code == 201 and scoped.json()["post"]["id"] != admin.json()["post"]["id"]


async def test_concurrent_retries_with_one_key_make_one_post(server: LiveServer, blog: dict[str, Any]) -> None:
    key = {"Idempotency-Key": "storm"}
    responses = await asyncio.gather(*(server.publish(headers=key, headline="Storm") for _ in range(10)))
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["post"]["id"] for r in responses if r.status_code == 201}) == 1
    assert (await server.blog())["post_count"] == 1


async def test_a_malformed_idempotency_key_is_400(server: LiveServer, blog: dict[str, Any]) -> None:
    assert_problem(await server.publish(headers={"Idempotency-Key": "x" * 256}), 400, "Idempotency-Key")
    await assert_unchanged(server, blog)


async def test_a_stale_if_match_is_412_and_changes_nothing(server: LiveServer, blog: dict[str, Any]) -> None:
    post = (await server.publish(headline="v1")).json()["post"]
    url = f"/api/blogs/b1/posts/{post['id']}"
    first, second = await asyncio.gather(
        server.http.patch(url, json={"headline": "edit A"}, headers={**server.auth(), "If-Match": '"1"'}),
        server.http.patch(url, json={"headline": "edit B"}, headers={**server.auth(), "If-Match": '"1"'}))
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    loser = first if first.status_code == 412 else second
    assert_problem(loser, 412, "If-Match")
    assert loser.headers["etag"] == '"2"'
    assert (await server.http.get(url)).json()["version"] == 2
    assert_problem(await server.http.delete(url, headers={**server.auth(), "If-Match": "1"}), 412)
    assert_problem(await server.http.patch(url, json={"headline": "x"},
                                           headers={**server.auth(), "If-Match": "banana"}), 400, "If-Match")
    assert (await server.http.get(url)).status_code == 200
    assert (await server.http.patch(url, json={"pinned": True}, headers={**server.auth(), "If-Match": "*"})).status_code == 200


async def test_unknown_posts_are_404_for_edit_and_delete(server: LiveServer, blog: dict[str, Any]) -> None:
    assert_problem(await server.http.patch("/api/blogs/b1/posts/nope", json={"headline": "x"},
                                           headers=server.auth()), 404)
    assert_problem(await server.http.delete("/api/blogs/b1/posts/nope", headers=server.auth()), 404)
    await assert_unchanged(server, blog)


# listing and events


async def test_posts_page_pinned_first_then_newest_with_a_cursor(server: LiveServer, blog: dict[str, Any]) -> None:
    for hour in range(10, 17):
        await server.publish(headline=f"h{hour}", published_at=f"2024-05-01T{hour}:00:00Z", pinned=(hour == 12))
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&before={cursor}" if cursor else "")
        page = (await server.http.get(f"/api/blogs/b1/posts?{query}")).json()
        seen += [p["headline"] for p in page["posts"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["h12", "h16", "h15", "h14", "h13", "h11", "h10"]
    oldest = (await server.http.get("/api/blogs/b1/posts?order=oldest&limit=100")).json()
    assert [p["headline"] for p in oldest["posts"]] == ["h12", "h10", "h11", "h13", "h14", "h15", "h16"]
    assert oldest["next"] is None


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                                              ("before=%%%", "before"), ("before=WzEsMiwiQSJd", "before"),
                                              ("order=random", "order")])
async def test_bad_list_parameters_are_422(server: LiveServer, blog: dict[str, Any], query: str, field: str) -> None:
    assert_problem(await server.http.get(f"/api/blogs/b1/posts?{query}"), 422, field)


async def test_events_since_returns_the_missed_events(server: LiveServer, blog: dict[str, Any]) -> None:
    for i in range(3):
        await server.publish(headline=f"P{i}")
    response = await server.http.get("/api/blogs/b1/events?since=1")
    assert response.status_code == 200
    body = response.json()
    assert [e["seq"] for e in body["events"]] == [2, 3] and body["seq"] == 3 and body["epoch"] == blog["epoch"]
    assert body["has_more"] is False and body["next"] is None
    assert (await server.http.get("/api/blogs/b1/events?since=3")).json()["events"] == []
    assert_problem(await server.http.get("/api/blogs/b1/events?since=9"), 410, "since")
    assert_problem(await server.http.get("/api/blogs/b1/events?since=1&epoch=other"), 410, "since")
    assert_problem(await server.http.get("/api/blogs/b1/events"), 422, "since")
    assert_problem(await server.http.get("/api/blogs/b1/events?since=-1"), 422, "since")


async def test_events_older_than_history_are_410(start_server: ServerFactory) -> None:
    """At least the last 1000 events are kept; asking for older ones is 410, never a partial list."""
    server = await start_server()
    await server.create_blog("b1")
    for i in range(1300):
        await server.publish(headline=f"P{i}")
    assert_problem(await server.http.get("/api/blogs/b1/events?since=0"), 410, "since")
    kept = (await server.http.get("/api/blogs/b1/events?since=300&limit=1000")).json()
    assert len(kept["events"]) == 1000 and kept["events"][0]["seq"] == 301 and not kept["has_more"]


# operations


async def test_health_readiness_metrics_and_openapi(server: LiveServer, blog: dict[str, Any]) -> None:
    assert (await server.http.get("/healthz")).json()["status"] == "ok"
    assert (await server.http.get("/readyz")).json()["status"] == "ready"
    await server.publish()
    metrics = (await server.http.get("/metrics")).text
    assert 'livepush_writes_total{kind="post.created"} 1.0' in metrics
    spec = (await server.http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= {"/api/blogs", "/api/blogs/{blog}", "/api/blogs/{blog}/posts",
                                  "/api/blogs/{blog}/posts/{post}", "/api/blogs/{blog}/events"}
    assert "PostCreate" in spec["components"]["schemas"] and "Problem" in spec["components"]["schemas"]
    publish = spec["paths"]["/api/blogs/{blog}/posts"]["post"]
    assert set(publish["responses"]) >= {"201", "401", "403", "404", "409", "413", "415", "422"}


async def test_unknown_api_paths_and_methods_are_problems(server: LiveServer) -> None:
    assert_problem(await server.http.get("/api/nothing"), 404)
    assert_problem(await server.http.put("/api/blogs"), 405)


async def test_reads_carry_cors_for_allowed_origins_only(server: LiveServer, blog: dict[str, Any]) -> None:
    """An embedded widget on a local page may read; other origins get no CORS grant; writes never do."""
    local = await server.http.get("/api/blogs/b1/posts", headers={"Origin": "http://localhost:3000"})
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    foreign = await server.http.get("/api/blogs/b1/posts", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    preflight = await server.http.options("/api/blogs/b1/posts", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400


async def test_writes_beyond_the_rate_are_429_with_retry_after(start_server: ServerFactory) -> None:
    """A token (or an address) that writes faster than LIVEPUSH_WRITE_RATE gets 429 and a retry hint."""
    server = await start_server(write_rate=1.0, write_burst=3.0)
    await server.create_blog("b1")  # one token from the bucket
    statuses = [(await server.publish()).status_code for _ in range(4)]
    assert statuses == [201, 201, 429, 429]
    limited = await server.publish()
    problem = assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1 and problem["code"] == "rate_limited"
    assert (await server.blog())["post_count"] == 2
    assert (await server.http.get("/api/blogs/b1/posts")).status_code == 200  # reads are not limited


async def test_session_says_who_a_token_is(server: LiveServer) -> None:
    admin = (await server.http.get("/api/session", headers=server.auth())).json()
    assert admin == {"subject": "admin", "admin": True, "blogs": ["*"]}
    scoped = await server.http.get("/api/session", headers=server.auth(mint_token(JWT_SECRET, ["b2", "b1"], 60,
                                                                                      subject="desk")))
    assert scoped.json() == {"subject": "desk", "admin": False, "blogs": ["b1", "b2"]}
    assert_problem(await server.http.get("/api/session"), 401, "Authorization")


async def test_security_headers(server: LiveServer, blog: dict[str, Any]) -> None:
    page = await server.http.get("/blogs/b1")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "SAMEORIGIN"
    api = await server.http.get("/api/blogs/b1")
    assert api.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in api.headers


async def test_request_ids_are_echoed_or_made(server: LiveServer) -> None:
    assert (await server.http.get("/healthz", headers={"X-Request-ID": "trace-42"})).headers["x-request-id"] == "trace-42"
    made = (await server.http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})).headers["x-request-id"]
    assert made != "bad id with spaces" and len(made) == 16
