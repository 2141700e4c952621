"""/readyz and the metrics on a Redis reached through Sentinels (`redis+sentinel://`).

The engine contract suite (tests/engine) and the whole e2e suite (tests/conftest.py ENGINES) run on
the Sentinel group too; this checks what only the Sentinel setup shows.
"""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.parametrize("engine_kind", ["redis-sentinel"], indirect=True)


async def test_readyz_and_metrics_on_sentinels(server: LiveServer) -> None:
    ready = await server.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["engine"] == "redis"
    metrics = (await server.http.get("/metrics")).text
    assert "livepush_redis_primary_switches_total 0.0" in metrics
    assert "livepush_redis_wait_timeouts_total 0.0" in metrics
