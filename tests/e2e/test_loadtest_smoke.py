"""`livepush loadtest` end to end: a few hundred simulated readers against a real server lose nothing.

The tool runs as a subprocess (`python -m server.loadtest`) with its own event loops, so it
does not compete with the in-loop server for this test's loop. No timing is asserted: only
that every acknowledged post reached every steady reader exactly once and in order, across
churn (disconnect, resume with since+epoch) and slow readers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.loadtest import main
from server.loadtest.checker import DUPLICATE, GAP, OK, REORDERED, SequenceChecker
from tests.conftest import ADMIN_TOKEN, ServerFactory

READERS = 300
TOOL_TIMEOUT = 45.0


async def run_tool(*args: str) -> tuple[int, str]:
    """Run the load-test tool in a subprocess; return its exit status and output."""
    environment = {**os.environ, "LIVEPUSH_TOKEN": ADMIN_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.loadtest", *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_three_hundred_churning_readers_see_every_post_once_in_order(start_server: ServerFactory,
                                                                          tmp_path: Path) -> None:
    """300 WebSocket readers, a fifth of them churning and a few reading slowly, while posts go out at 10/s:
    every post the server acknowledged reaches every steady reader, none twice, none out of order."""
    server = await start_server()
    await server.create_blog("b1")
    summary_path, report_path = tmp_path / "summary.json", tmp_path / "report.html"
    status, output = await run_tool(
        "--url", server.base, "--blog", "b1", "--readers", str(READERS), "--ramp", "0.5", "--duration", "3",
        "--publish-rate", "10", "--churn", "0.2", "--churn-every", "1.5", "--churn-pause", "0.2",
        "--slow", "0.05", "--slow-every", "1", "--slow-pause", "1", "--drain", "5", "--processes", "1",
        "--quiet", "--json", str(summary_path), "--html", str(report_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    checks, counts = summary["checks"], summary["counts"]
    assert (checks["lost"], checks["lost_posts"], checks["duplicated"], checks["reordered"], checks["gaps"]) == (
        0, 0, 0, 0, 0), summary["error_samples"]
    assert status == 0, output
    assert summary["healthy"] is True
    assert summary["started"] == READERS
    assert summary["publisher"]["acknowledged"] > 0
    assert checks["steady_readers"] > 0
    assert counts["churned"] > 0 and counts["replayed"] > 0  # resumes happened and replayed what was missed
    assert counts["protocol_errors"] == 0
    report = report_path.read_text()
    assert report.count("<svg") >= 4 and "http://" not in report.replace(server.base, "")


@pytest.mark.parametrize("engine_kind", ["memory"])  # the transport is the subject here, not the engine
async def test_sse_readers_resume_with_last_event_id_and_lose_nothing(start_server: ServerFactory,
                                                                     tmp_path: Path) -> None:
    """The same check over server-sent events, with fewer readers, resuming with since+epoch and Last-Event-ID."""
    server = await start_server()
    await server.create_blog("b1")
    summary_path = tmp_path / "summary.json"
    status, output = await run_tool(
        "--url", server.base, "--blog", "b1", "--transport", "sse", "--readers", "100", "--ramp", "0.5",
        "--duration", "1.5", "--publish-rate", "10", "--churn", "0.2", "--churn-every", "1", "--churn-pause", "0.2",
        "--drain", "5", "--processes", "1", "--quiet", "--json", str(summary_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    assert summary["checks"]["lost"] == 0 and summary["checks"]["duplicated"] == 0, summary["error_samples"]
    assert status == 0, output
    assert summary["counts"]["churned"] > 0


@pytest.mark.parametrize("engine_kind", ["memory"])  # the publisher's write mix is the subject, not the engine
async def test_edits_and_deletes_are_held_to_the_same_checks_as_new_posts(start_server: ServerFactory,
                                                                          tmp_path: Path) -> None:
    """With --edit-share and --keep-posts the publisher also PATCHes new posts and DELETEs old ones: every
    acknowledged write of every kind reaches every reader once, in order, and counting readers agree."""
    server = await start_server()
    await server.create_blog("b1")
    summary_path = tmp_path / "summary.json"
    status, output = await run_tool(
        "--url", server.base, "--blog", "b1", "--readers", "100", "--ramp", "0.5", "--duration", "2",
        "--publish-rate", "20", "--edit-share", "0.3", "--keep-posts", "10", "--sample", "0.5", "--churn", "0.1",
        "--churn-every", "1", "--churn-pause", "0.2", "--drain", "5", "--processes", "1", "--quiet",
        "--json", str(summary_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    checks, counts, publisher = summary["checks"], summary["counts"], summary["publisher"]
    assert (checks["lost"], checks["duplicated"], checks["reordered"], checks["gaps"], checks["count_excess"]) == (
        0, 0, 0, 0, 0), summary["error_samples"]
    assert status == 0, output
    assert publisher["kinds"]["edit"] > 0 and publisher["kinds"]["delete"] > 0 and publisher["kinds"]["create"] > 10
    assert sum(publisher["kinds"].values()) == publisher["acknowledged"] == publisher["attempted"]
    assert counts["protocol_errors"] == 0


def test_a_remote_target_is_refused_without_allow_remote() -> None:
    """The tool only loads servers on this machine unless told otherwise (192.0.2.1 is a documentation address)."""
    assert main(["--url", "http://192.0.2.1:8000", "--readers", "1", "--quiet"]) == 2


def test_the_checker_tells_gaps_duplicates_and_reorders_apart() -> None:
    """After a snapshot at 5: 6 is next, 8 leaves a hole, 7 fills it late, 8 again is a duplicate."""
    checker = SequenceChecker()
    assert checker.snapshot(5, "e1") == OK
    assert [checker.event(seq) for seq in (6, 8, 7, 8)] == [OK, GAP, REORDERED, DUPLICATE]
    assert (checker.gaps, checker.reordered, checker.duplicates, checker.missing()) == (1, 1, 1, 0)
    assert checker.snapshot(3, "e2") == OK and checker.epoch_changes == 1  # a new epoch starts afresh


@pytest.mark.parametrize("engine_kind", ["memory"])  # the tool's counting mode is the subject, not the engine
async def test_counting_readers_are_held_to_the_same_no_loss_check(start_server: ServerFactory,
                                                                    tmp_path: Path) -> None:
    """With --sample 0.1 most readers only count frames, in batches; every one still reaches the last seq."""
    server = await start_server()
    await server.create_blog("b1")
    summary_path = tmp_path / "summary.json"
    status, output = await run_tool(
        "--url", server.base, "--blog", "b1", "--readers", "200", "--ramp", "0.5", "--duration", "2",
        "--publish-rate", "20", "--sample", "0.1", "--drain", "5", "--processes", "1", "--quiet",
        "--json", str(summary_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    checks, counts = summary["checks"], summary["counts"]
    assert (checks["lost"], checks["duplicated"], checks["count_excess"]) == (0, 0, 0), summary["error_samples"]
    assert status == 0, output
    assert checks["steady_readers"] == 200
    assert counts["counted"] > 0 and summary["latency"]["count"] > 0  # both kinds of reader were at work
    assert counts["deliveries"] == 200 * summary["publisher"]["acknowledged"]


@pytest.mark.parametrize("engine_kind", ["redis", "redis-cluster"])  # nodes share an engine only through Redis
async def test_readers_spread_over_two_nodes_see_every_post_once_wherever_it_was_written(
        start_server: ServerFactory, tmp_path: Path) -> None:
    """Two nodes on one Redis (or one Cluster), `--url` given twice: readers start on both, each resume lands on
    the other node, writes alternate between them; every acknowledged write still reaches every reader exactly
    once and in order."""
    first, second = await start_server(), await start_server()
    await first.create_blog("b1")
    summary_path = tmp_path / "summary.json"
    status, output = await run_tool(
        "--url", first.base, "--url", second.base, "--blog", "b1", "--readers", "200", "--ramp", "0.5",
        "--duration", "3", "--publish-rate", "10", "--churn", "0.3", "--churn-every", "1", "--churn-pause", "0.2",
        "--drain", "5", "--processes", "1", "--quiet", "--json", str(summary_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    checks, nodes = summary["checks"], summary["nodes"]
    assert (checks["lost"], checks["duplicated"], checks["reordered"], checks["gaps"], checks["regressions"]) == (
        0, 0, 0, 0, 0), summary["error_samples"]
    assert status == 0, output
    assert summary["config"]["urls"] == [first.base, second.base]
    assert [node["url"] for node in nodes] == [first.base, second.base]
    assert [node["readers"] for node in nodes] == [100, 100]  # round-robin: reader i starts on node i mod 2
    assert all(node["resumes"] > 0 and node["writes"] > 0 for node in nodes)
    assert sum(node["writes"] for node in nodes) == summary["publisher"]["acknowledged"]
    assert "readers per node 100/100" in output
