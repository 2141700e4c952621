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
"""

from server.loadtest.cli import main

__all__ = ["main"]
