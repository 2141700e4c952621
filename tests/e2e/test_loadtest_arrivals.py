"""`livepush loadtest --arrivals`: browser-like visits (page, assets, stream from the page's data-seq)
against a real uvicorn, while posts go out, miss nothing published between their page and their stream.

Each arrival waits `--think` seconds between its page and its stream, so posts are published in
that window and the server must replay them: the run reports how many arrivals raced a post that
way, and the test requires some did, so the check is not vacuous. The second test proves the
check can fail: a server whose stream skips the first event after `since` (a TCP proxy in front of
a real one, rewriting the WebSocket request line) makes the tool report missed events and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ServerFactory
from tests.e2e.test_loadtest_smoke import run_tool

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


SINCE = re.compile(rb"^(GET /ws/blogs/[^ ?]+\?(?:[^ ]*&)?since=)(\d+)")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def skipping_proxy(port: int) -> AsyncIterator[int]:
    """A broken server in front of a real one: a TCP proxy that turns a stream's `since=N` into N+1, so event
    N+1 never reaches a reader resuming from N. Everything else passes through unchanged."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            line = await reader.readuntil(b"\r\n")
            upstream_writer.write(SINCE.sub(lambda m: m.group(1) + str(int(m.group(2)) + 1).encode(), line))
            both = [asyncio.create_task(pipe(reader, upstream_writer)),
                    asyncio.create_task(pipe(upstream_reader, writer))]
            tasks.update(both)
            await asyncio.gather(*both)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            upstream_writer.close()
            writer.close()

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1]
    finally:
        proxy.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("engine_kind", ["memory"])  # the tool's check is the subject, not the engine
async def test_an_arrival_that_misses_an_event_between_page_and_stream_fails_the_run(
        start_server: ServerFactory, tmp_path: Path) -> None:
    server = await start_server()
    await server.create_blog("b1")
    summary_path = tmp_path / "summary.json"
    async with skipping_proxy(server.port) as port:
        status, output = await run_tool("--url", f"http://127.0.0.1:{port}", "--blog", "b1", *ARRIVAL_ARGS,
                                        "--json", str(summary_path))
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    assert status == 1, output
    assert summary["arrivals"]["missed"] > 0
    assert any(problem.startswith("arrivals missed") for problem in summary["problems"])
