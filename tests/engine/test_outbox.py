"""The webhook outbox contract on both storages, and the lease that makes one process the deliverer (Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.app import make_outbox
from server.engine.outbox import LOG_SIZE, Attempt, Endpoint, Outbox
from tests.conftest import make_settings, redis_for


def endpoint(endpoint_id: str = "wh1") -> Endpoint:
    return Endpoint(id=endpoint_id, url="http://127.0.0.1:9/hook", blogs=("b1", "b2"), events=("*",),
                    secret="whsec_c2VjcmV0", created_at=1_700_000_000.5, description="desk")


def attempt(seq: int, status: int | None = 204) -> Attempt:
    return Attempt(f"msg_b1_e_{seq}", "b1", seq, "post.created", 1, status, "", 1_700_000_001.0, 1.5)


@pytest.fixture
async def outbox(engine_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Outbox]:
    found = make_outbox(make_settings(engine_kind, redis_for(engine_kind, request)))
    yield found
    await found.close()


async def test_an_endpoint_is_stored_with_its_cursors_and_removed_with_everything(outbox: Outbox) -> None:
    assert await outbox.add(endpoint(), {"b1": 7}, limit=10)
    assert await outbox.get("wh1") == endpoint()
    assert await outbox.all() == [endpoint()]
    assert await outbox.cursors("wh1") == {"b1": 7}
    assert await outbox.remove("wh1")
    assert await outbox.get("wh1") is None and await outbox.all() == [] and await outbox.cursors("wh1") == {}
    assert not await outbox.remove("wh1")


async def test_the_number_of_endpoints_is_bounded(outbox: Outbox) -> None:
    assert await outbox.add(endpoint("wh1"), {}, limit=1)
    assert not await outbox.add(endpoint("wh2"), {}, limit=1)


async def test_cursors_only_move_forward_unless_forced_and_carry_the_log(outbox: Outbox) -> None:
    await outbox.add(endpoint(), {"b1": 5}, limit=10)
    assert await outbox.acquire("wh1", "node-a", 5.0)
    assert await outbox.advance("wh1", "node-a", "b1", 9, attempts=[attempt(9)])
    assert await outbox.advance("wh1", "node-a", "b1", 3)
    assert (await outbox.cursors("wh1"))["b1"] == 9
    assert await outbox.advance("wh1", "node-a", "b1", 3, force=True)
    assert (await outbox.cursors("wh1"))["b1"] == 3
    assert await outbox.attempts("wh1", 10) == [attempt(9)]


async def test_the_log_keeps_the_newest_attempts_first(outbox: Outbox) -> None:
    await outbox.add(endpoint(), {}, limit=10)
    await outbox.record("wh1", [attempt(seq, 500) for seq in range(1, LOG_SIZE + 21)])
    kept = await outbox.attempts("wh1", LOG_SIZE + 50)
    assert len(kept) == LOG_SIZE and kept[0].seq == LOG_SIZE + 20 and kept[-1].seq == 21
    assert [item.seq for item in await outbox.attempts("wh1", 3)] == [LOG_SIZE + 20, LOG_SIZE + 19, LOG_SIZE + 18]


async def test_failing_and_disabled_states_are_kept(outbox: Outbox) -> None:
    await outbox.add(endpoint(), {}, limit=10)
    await outbox.set_failing("wh1", 1_700_000_100.25)
    assert (await outbox.get("wh1")).failing_since == 1_700_000_100.25  # type: ignore[union-attr]
    await outbox.set_failing("wh1", None)
    await outbox.disable("wh1", "answered 500 for 24 h", 1_700_086_400.0)
    found = await outbox.get("wh1")
    assert found is not None and not found.enabled and found.failing_since is None
    assert (found.disabled_reason, found.disabled_at) == ("answered 500 for 24 h", 1_700_086_400.0)
    assert not await outbox.acquire("wh1", "node-a", 5.0)  # nobody delivers a disabled endpoint
    await outbox.disable("gone", "no such endpoint", 1.0)
    assert await outbox.get("gone") is None


@pytest.mark.parametrize("engine_kind", ["redis"])
async def test_one_owner_holds_the_lease_and_only_it_moves_cursors(outbox: Outbox) -> None:
    """Node B can neither take A's lease nor move A's cursors; once A's lease lapses B takes over, and A,
    back from a pause, can no longer move anything."""
    await outbox.add(endpoint(), {"b1": 1}, limit=10)
    assert await outbox.acquire("wh1", "node-a", 0.3)
    assert not await outbox.acquire("wh1", "node-b", 5.0)
    assert not await outbox.advance("wh1", "node-b", "b1", 5)
    assert await outbox.acquire("wh1", "node-a", 0.3)  # renewal
    await asyncio.sleep(0.4)  # the lease must lapse: nothing to await but Redis's clock
    assert await outbox.acquire("wh1", "node-b", 5.0)
    assert not await outbox.advance("wh1", "node-a", "b1", 9)
    assert await outbox.advance("wh1", "node-b", "b1", 4)
    assert (await outbox.cursors("wh1"))["b1"] == 4
    await outbox.release("wh1", "node-a")  # not its lease: nothing happens
    assert not await outbox.acquire("wh1", "node-c", 5.0)
    await outbox.release("wh1", "node-b")
    assert await outbox.acquire("wh1", "node-c", 5.0)
    assert await outbox.remove("wh1")
    assert not await outbox.acquire("wh1", "node-c", 5.0)
