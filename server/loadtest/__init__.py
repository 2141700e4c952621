"""`livepush loadtest`: simulated readers at scale against any livepush server.

Readers (WebSocket or SSE) run in worker processes, each a single event loop of plain
asyncio.Protocols (websockets' Sans-I/O client for WebSocket): no task per reader, one JSON
parse per message. A publisher stamps each post with its send time, so every reader measures
publish-to-receive latency (HDR histograms, merged across workers), and every reader's seq is
checked for gaps, duplicates and reordering, across resumes with since+epoch.

Modules:
    cli.py          options, output, exit status            runner.py     the coordinator's timeline
    config.py       the typed options                       worker.py     a worker process
    reader.py       one simulated reader's behaviour        checker.py    one reader's seq check
    transport*.py   the WebSocket and SSE connections       publisher.py  stamped posts at a rate
    stats.py        a worker's counters and histograms      aggregate.py  the merge across workers
    summary.py      figures and verdict                     console.py, report_html.py, svg.py: reports
    arrivals.py     browser-like arrivals (page, assets, stream) browser.py   a visitor's HTTP cache

The tool is its own extra (`pip install 'livepush[loadtest]'`): rich and hdrhistogram are not
dependencies of the server, which never imports this package (`livepush loadtest` does, lazily).
httpx (and h11 under it) are: the server delivers webhooks with httpx.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

EXTRA = "pip install 'livepush[loadtest]'"
REQUIRED = (("rich", "rich"), ("hdrh", "hdrhistogram"))  # (module, distribution); httpx and h11 come with the server


def missing_requirements() -> list[str]:
    """The load-test extra's distributions that cannot be imported here."""
    missing = []
    for module, distribution in REQUIRED:
        try:
            __import__(module)
        except ImportError:
            missing.append(distribution)
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """`livepush loadtest`: say exactly what to install when the extra is missing, else run the tool."""
    missing = missing_requirements()
    if missing:
        print(f"livepush loadtest: needs {', '.join(missing)}, which a plain install of the server leaves out; "
              f"install the load-test extra: {EXTRA}", file=sys.stderr)
        return 2
    from server.loadtest.cli import main as run

    return run(argv)


__all__ = ["EXTRA", "main", "missing_requirements"]
