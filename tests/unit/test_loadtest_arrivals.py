"""The arrival schedule's shapes and the simulated browser's cache rules (server.loadtest.arrivals, browser)."""

from __future__ import annotations

import pytest

from server.loadtest.arrivals import arrival_times
from server.loadtest.browser import Answer, freshness


@pytest.mark.parametrize(("shape", "expected"), [("flat", 200), ("ramp", 100), ("spike", 56)])
def test_arrival_shapes_integrate_the_rate(shape: str, expected: int) -> None:
    """20/s for 10 s: flat 200; ramp from 0 to 20/s half that; spike 2/s with 20/s for the middle 2 s: 16 + 40."""
    times = arrival_times(20, shape, 10)
    assert len(times) == expected
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 10


def test_a_spike_packs_its_arrivals_into_the_middle_fifth() -> None:
    times = arrival_times(20, "spike", 10)
    assert sum(1 for t in times if 4 <= t < 6) in (40, 41)  # the one due at 4.0 s may fall either side


def response(**headers: str) -> Answer:
    return Answer(200, headers, b"", 0)


def test_freshness_follows_cache_control_then_the_last_modified_heuristic() -> None:
    assert freshness(response(**{"cache-control": "public, max-age=60"}), 100.0) == 160.0
    assert freshness(response(**{"cache-control": "max-age=31536000, immutable"}), 0.0) > 3e7
    assert freshness(response(**{"cache-control": "no-cache", "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}),
                     5.0) == 0.0
    assert freshness(response(**{"last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"}), 0.0) > 86400  # a tenth of its age
    assert freshness(response(), 5.0) == 0.0  # nothing to go by: ask every time
