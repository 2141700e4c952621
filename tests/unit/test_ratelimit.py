"""Token buckets."""

from __future__ import annotations

from server.ratelimit import RateLimiter


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3.0)
    assert [limiter.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", now=0.0) == 0.5
    assert limiter.take("k", now=0.5) == 0.0  # half a second later: one token back
    assert limiter.take("other", now=0.5) == 0.0  # buckets are per key


def test_zero_rate_means_unlimited() -> None:
    limiter = RateLimiter(rate=0.0, burst=1.0)
    assert not limiter.enabled and all(limiter.take("k") == 0.0 for _ in range(100))


def test_the_table_forgets_the_least_recent_key() -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0, max_keys=2)
    limiter.take("a", now=0.0)
    limiter.take("b", now=0.0)
    limiter.take("c", now=0.0)
    assert limiter.take("a", now=0.0) == 0.0  # forgotten, so full again
    assert limiter.take("c", now=0.0) > 0
