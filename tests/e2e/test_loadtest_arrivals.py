"""`livepush loadtest --arrivals`: browser-like visits (page, assets, stream from the page's data-seq)
against a real uvicorn, while posts go out, miss nothing published between their page and their stream.

Each arrival waits `--think` seconds between its page and its stream, so posts are published in
that window and the server must replay them: the run reports how many arrivals raced a post that
way, and the test requires some did, so the check is not vacuous. The second test proves the
check can fail: a server whose stream skips the first event after `since` makes the tool report
missed events and exit 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from tests.conftest import LiveServer, ServerFactory, make_settings
from tests.e2e.test_loadtest_smoke import run_tool

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
ARRIVAL_ARGS = ("--readers", "0", "--arrivals", "5", "--duration", "2", "--publish-rate", "10", "--think", "0.3",
                "--repeat", "0.5", "--drain", "10", "--processes", "1", "--quiet")


async def test_arrivals_load_page_and_assets_and_miss_no_event_published_before_their_stream(
        start_server: ServerFactory, tmp_path: Path) -> None:
    """10 arrivals over 2 s at 10 posts/s: every stream opens from its page's seq, some raced posts, none missed."""
    server = await start_server()
    await server.create_blog("b1")
    summary_path, report_path = tmp_path / "summary.json", tmp_path / "report.html"
    status, output = await run_tool("--url", server.base, "--blog", "b1", *ARRIVAL_ARGS, "--json", str(summary_path),
                                    "--html", str(report_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    arrivals = summary["arrivals"]
    assert (arrivals["missed"], summary["checks"]["gaps"], summary["checks"]["duplicated"]) == (0, 0, 0), (
        summary["error_samples"])
    assert status == 0, output
    assert arrivals["scheduled"] == arrivals["launched"] == arrivals["pages"] == arrivals["opened"] == 10
    assert arrivals["checked"] == 10 and arrivals["errors"] == 0
    assert arrivals["raced"] > 0  # posts were published between some pages and their streams, and replayed
    assert arrivals["assets"] > 0  # the widget's script, its modules and the stylesheet
    assert arrivals["time_to_interactive"]["count"] == 10
    assert summary["counts"]["protocol_errors"] == 0
    assert "<h2>Arrivals</h2>" in report_path.read_text()


def skip_first_replayed_event(app: ASGIApp) -> ASGIApp:
    """A broken server: a stream resuming with `since=N` is served from N+1, so event N+1 never reaches it."""

    async def wrapped(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            query = dict(parse_qsl(scope["query_string"].decode()))
            if "since" in query:
                query["since"] = str(int(query["since"]) + 1)
                scope = {**scope, "query_string": urlencode(query).encode()}
        await app(scope, receive, send)

    return wrapped


@pytest.mark.parametrize("engine_kind", ["memory"])  # the tool's check is the subject, not the engine
async def test_an_arrival_that_misses_an_event_between_page_and_stream_fails_the_run(
        engine_kind: str, tmp_path: Path) -> None:
    live = LiveServer(make_settings(engine_kind, None))
    live.server.config.app = skip_first_replayed_event(live.app)
    await live.start()
    try:
        await live.create_blog("b1")
        summary_path = tmp_path / "summary.json"
        status, output = await run_tool("--url", live.base, "--blog", "b1", *ARRIVAL_ARGS,
                                        "--json", str(summary_path))
    finally:
        await live.stop()
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    assert status == 1, output
    assert summary["arrivals"]["missed"] > 0
    assert any(problem.startswith("arrivals missed") for problem in summary["problems"])
