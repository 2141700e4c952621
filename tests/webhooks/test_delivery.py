"""Webhook delivery end to end, on both engines: a real server, a real receiver on loopback, real sockets.

Every delivery is verified with the `standardwebhooks` package. The receiver fails, times out,
goes away and comes back; every event still arrives, once per webhook-id, in order per blog, and
nothing from a blog the endpoint did not ask for.
"""

from __future__ import annotations

import asyncio

from server.auth import mint_token
from tests.conftest import JWT_SECRET, ServerFactory, wait_until
from tests.webhooks.conftest import WEBHOOK_SETTINGS, Receiver, deliveries, eventually, register, shown


async def test_every_event_arrives_once_through_failures_timeouts_and_an_outage(
        start_server: ServerFactory, receiver: Receiver) -> None:
    """200 events over 3 blogs while the receiver answers 500, then times out, then is down, then comes back:
    each arrives signed, once per webhook-id among the accepted deliveries, in seq order per blog."""
    server = await start_server(**WEBHOOK_SETTINGS)
    blogs = ["b1", "b2", "b3"]
    for blog_id in [*blogs, "other"]:
        await server.create_blog(blog_id)
    endpoint = await register(server.http, receiver.url, blogs)
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    receiver.secret = endpoint["secret"]
    receiver.set_mode("fail")

    expected: set[str] = set()
    epochs = {blog_id: (await server.blog(blog_id))["epoch"] for blog_id in blogs}

    async def publish_all() -> None:
        for index in range(200):
            blog_id = blogs[index % 3]
            response = await server.publish(blog_id, headline=f"Update {index}")
            assert response.status_code == 201, response.text
            expected.add(f"msg_{blog_id}_{epochs[blog_id]}_{response.json()['seq']}")
            if index % 20 == 0:
                assert (await server.publish("other", headline=f"Elsewhere {index}")).status_code == 201

    publishing = asyncio.create_task(publish_all())
    await wait_until(lambda: len(receiver.requests) >= 30, 20, "failed attempts")
    receiver.set_mode("slow")
    mark = len(receiver.requests)
    await wait_until(lambda: len(receiver.requests) >= mark + 6, 20, "timed-out attempts")
    await receiver.stop()
    await eventually(lambda: deliveries(server.http, endpoint["id"]),
                     lambda found: sum("ConnectError" in item["error"] for item in found) >= 3)
    timeouts = [item for item in await deliveries(server.http, endpoint["id"]) if item["error"].startswith("timed out")]
    await receiver.start()
    receiver.set_mode("ok")
    await publishing
    await wait_until(lambda: {r.webhook_id for r in receiver.accepted} >= expected, 60, "every event accepted")

    accepted = [r.webhook_id for r in receiver.accepted]
    assert len(accepted) == len(set(accepted)) == 200
    assert set(accepted) == expected
    assert receiver.unverified == []
    assert {r.event["blog"] for r in receiver.requests} == set(blogs)
    for blog_id in blogs:
        seqs = [r.event["seq"] for r in receiver.accepted if r.event["blog"] == blog_id]
        assert seqs == sorted(seqs)
    retried = [r for r in receiver.requests if not r.accepted]
    assert retried and all(r.webhook_id in expected for r in retried)  # redeliveries carry the event's one id
    assert timeouts, "no attempt was recorded as timed out"
    after = await shown(server.http, endpoint["id"])
    assert after["enabled"] is True and after["failing_since"] is None and "secret" not in after


async def test_an_endpoint_gets_only_the_event_types_it_asked_for(start_server: ServerFactory,
                                                                   receiver: Receiver) -> None:
    server = await start_server(**WEBHOOK_SETTINGS)
    await server.create_blog("b1")
    endpoint = await register(server.http, receiver.url, ["*"], ["post.deleted"])
    receiver.secret = endpoint["secret"]
    post = (await server.publish("b1", headline="Soon gone")).json()
    deleted = await server.http.delete(f"/api/blogs/b1/posts/{post['post']['id']}", headers=server.auth())
    await server.create_blog("b2")  # created after the endpoint: "*" covers it
    second = (await server.publish("b2", headline="Also gone")).json()
    await server.http.delete(f"/api/blogs/b2/posts/{second['post']['id']}", headers=server.auth())
    await wait_until(lambda: len(receiver.accepted) >= 2, 10, "two deletions")
    assert [(r.event["type"], r.event["blog"], r.event["seq"]) for r in receiver.accepted] in (
        [("post.deleted", "b1", deleted.json()["seq"]), ("post.deleted", "b2", 2)],
        [("post.deleted", "b2", 2), ("post.deleted", "b1", deleted.json()["seq"])])
    assert receiver.unverified == []


async def test_an_endpoint_that_keeps_failing_is_disabled_and_says_why(start_server: ServerFactory,
                                                                       receiver: Receiver) -> None:
    server = await start_server(**{**WEBHOOK_SETTINGS, "webhook_retry_window": 1.0})
    await server.create_blog("b1")
    endpoint = await register(server.http, receiver.url, ["b1"])
    receiver.set_mode("fail")
    assert (await server.publish("b1")).status_code == 201
    disabled = await eventually(lambda: shown(server.http, endpoint["id"]), lambda found: not found["enabled"])
    assert "every attempt failed" in disabled["disabled_reason"] and disabled["disabled_at"]
    metrics = (await server.http.get("/metrics")).text
    assert "livepush_webhook_disabled_total 1.0" in metrics
    count = len(receiver.requests)
    assert (await server.publish("b1")).status_code == 201
    await asyncio.sleep(0.5)  # a disabled endpoint stays quiet: nothing to await but time
    assert len(receiver.requests) == count


async def test_an_endpoint_whose_queue_outgrows_its_bound_is_disabled_and_says_why(
        start_server: ServerFactory, receiver: Receiver) -> None:
    """The queue per endpoint is bounded (LIVEPUSH_WEBHOOK_MAX_BACKLOG): past it the endpoint is disabled,
    long before the engine's history (which keeps at least that many events) could lose one."""
    server = await start_server(**{**WEBHOOK_SETTINGS, "webhook_max_backlog": 100})
    await server.create_blog("b1")
    endpoint = await register(server.http, receiver.url, ["b1"])
    receiver.set_mode("fail")
    for index in range(110):
        assert (await server.publish("b1", headline=f"Update {index}")).status_code == 201
    disabled = await eventually(lambda: shown(server.http, endpoint["id"]), lambda found: not found["enabled"])
    assert "more than the bound of 100" in disabled["disabled_reason"]
    assert receiver.accepted == []


async def test_webhook_endpoints_are_listed_shown_and_deleted(start_server: ServerFactory,
                                                              receiver: Receiver) -> None:
    server = await start_server(**WEBHOOK_SETTINGS)
    endpoint = await register(server.http, receiver.url, ["b1"])
    listed = (await server.http.get("/api/webhooks", headers=server.auth())).json()["webhooks"]
    assert [item["id"] for item in listed] == [endpoint["id"]] and "secret" not in listed[0]
    gone = await server.http.delete(f"/api/webhooks/{endpoint['id']}", headers=server.auth())
    assert gone.status_code == 200
    assert (await server.http.get(f"/api/webhooks/{endpoint['id']}", headers=server.auth())).status_code == 404
    assert (await server.http.delete(f"/api/webhooks/{endpoint['id']}", headers=server.auth())).status_code == 404


async def test_only_the_admin_token_manages_webhooks(start_server: ServerFactory, receiver: Receiver) -> None:
    server = await start_server(**WEBHOOK_SETTINGS)
    scoped = mint_token(JWT_SECRET, ["*"], 600, "publisher")
    body = {"url": receiver.url, "blogs": ["*"], "events": ["*"]}
    assert (await server.http.post("/api/webhooks", json=body)).status_code == 401
    refused = await server.http.post("/api/webhooks", json=body, headers=server.auth(scoped))
    assert refused.status_code == 403 and refused.json()["field"] == "Authorization"
    assert (await server.http.get("/api/webhooks", headers=server.auth(scoped))).status_code == 403
