"""The soak script (bench/soak.py) for a few seconds: it runs, checks every event and reads the server's memory.

The soak starts its own server and runs the load-test tool in its own process, so it runs here
as a subprocess, unpinned. No timing is asserted: only that nothing was lost, duplicated or
reordered across churn, slow readers, new posts and edits, that the server's memory was read
while the readers were connected, and that the results were written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SOAK_TIMEOUT = 40.0


def test_a_short_soak_loses_nothing_and_reads_the_server_memory(tmp_path: Path) -> None:
    """100 readers for 6 s of writes (a tenth churning, some slow, 30% edits): every check is 0, memory was read."""
    output = tmp_path / "soak.json"
    process = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "6", "--readers", "100", "--rate", "10", "--interval", "1",
         "--churn-every", "1.5", "--churn-pause", "0.2", "--slow-every", "1", "--slow-pause", "1", "--drain", "5",
         "--no-pin", "--output", str(output)],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True, timeout=SOAK_TIMEOUT,
        check=False)
    report: dict[str, Any] = orjson.loads(output.read_bytes())
    checks = report["checks"]
    assert (checks["lost"], checks["duplicated"], checks["reordered"], checks["gaps"], checks["regressions"]) == (
        0, 0, 0, 0, 0), report["error_samples"]
    assert process.returncode == 0, process.stdout + process.stderr
    assert report["passed"] is True
    assert report["publisher"]["kinds"]["create"] > 0 and report["publisher"]["kinds"]["edit"] > 0
    assert report["counts"]["churned"] > 0
    during = [r for r in report["readings"] if r["readers_open"] > 0]
    assert during and all(r["rss_kib"] > 0 and r["fds"] > 0 for r in report["readings"])
    assert report["memory"][0]["judged"] is False  # seconds are too short to judge a trend; the run says so
    assert output.with_suffix(".md").read_text().count("| ") > 10
