"""The soak's memory rule (bench/soak.py): flat, grown, or too short to judge; and its warm-up."""

from __future__ import annotations

import argparse

from bench.soak import judge_memory, warm_up

MIB = 1024


def readings(start: float, end: float, kib: float, per_minute: float = 0.0) -> list[tuple[float, int]]:
    """One reading every 5 s from *start* to *end*, starting at *kib* and growing *per_minute* KiB a minute."""
    return [(t, round(kib + per_minute * (t - start) / 60)) for t in range(int(start), int(end) + 1, 5)]


def test_a_level_heap_with_allocator_steps_is_flat() -> None:
    """A server at 90 MiB that steps up 2 MiB once, early, passes: the thirds differ by less than 8 MiB."""
    points = readings(0, 1800, 90 * MIB)
    points = [(t, kib + (2 * MIB if t > 300 else 0)) for t, kib in points]
    verdict = judge_memory("server", points, (220, 1800), 220, 0.10, 8.0)
    assert verdict.judged and verdict.passed, verdict.reason


def test_a_steady_leak_fails_even_when_each_step_is_small() -> None:
    """0.6 MiB a minute over a 26-minute window moves the thirds' means ~10.5 MiB apart: past max(10%, 8 MiB)."""
    verdict = judge_memory("server", readings(0, 1800, 90 * MIB, per_minute=0.6 * MIB), (220, 1800), 220, 0.10, 8.0)
    assert verdict.judged and not verdict.passed
    assert verdict.slope_kib_per_min is not None and 0.55 * MIB < verdict.slope_kib_per_min < 0.65 * MIB


def test_a_run_shorter_than_its_warm_up_is_reported_not_judged() -> None:
    """Three minutes at the defaults: the warm-up (220 s) outlasts the publishing; the verdict says so and passes."""
    verdict = judge_memory("server", readings(0, 180, 80 * MIB, per_minute=2 * MIB), (220, 180), 220, 0.10, 8.0)
    assert not verdict.judged and verdict.passed and "220 s warm-up" in verdict.reason


def test_the_warm_up_waits_for_the_history_ring_and_the_kept_posts() -> None:
    """At 5 writes/s the 1 000-event history ring fills in 200 s; at 50/s the 60 s key TTL is the longest fill."""
    defaults = {"edit_share": 0.3, "keep_posts": 200}
    assert warm_up(argparse.Namespace(rate=5.0, seconds=1800.0, **defaults)) == 220.0
    assert warm_up(argparse.Namespace(rate=50.0, seconds=300.0, **defaults)) == 66.0
    assert warm_up(argparse.Namespace(rate=50.0, seconds=7200.0, **defaults)) == 720.0  # at least 10% of the run
