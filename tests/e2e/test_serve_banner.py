"""`livepush serve` as its own process: the start-up lines never carry an admin token the operator chose.

stdout goes to the platform's logs (the Procfile runs `livepush serve`), so only a token generated
for this run is printed: there is no other way to learn it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def serve(env: dict[str, str]) -> AsyncIterator[tuple[str, str]]:
    """Run `python -m server serve` until it answers; yield its base URL and everything it printed so far."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", "--port", str(port), cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "LIVEPUSH_DEMO": "0", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    printed: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not printed or "admin token" not in printed[-1]:
                line = await process.stdout.readline()
                assert line, "serve exited: " + "".join(printed)
                printed.append(line.decode())
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=2) as client:
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
        yield base, "".join(printed)
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 20)
        printed.append(output.decode())
        assert ADMIN_TOKEN not in "".join(printed)


async def test_an_admin_token_from_the_environment_is_never_printed() -> None:
    async with serve({"LIVEPUSH_ADMIN_TOKEN": ADMIN_TOKEN}) as (base, printed):
        assert ADMIN_TOKEN not in printed
        assert "admin token   from LIVEPUSH_ADMIN_TOKEN (not shown)" in printed
        async with httpx.AsyncClient(base_url=base) as client:  # and it is the token in force
            session = await client.get("/api/session", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert session.json()["admin"] is True


async def test_a_token_generated_for_this_run_is_printed_once() -> None:
    async with serve({}) as (base, printed):
        line = next(line for line in printed.splitlines() if "admin token" in line)
        token = line.split()[2]
        assert "generated for this run" in line and printed.count(token) == 1
        async with httpx.AsyncClient(base_url=base) as client:
            session = await client.get("/api/session", headers={"Authorization": f"Bearer {token}"})
            assert session.json()["admin"] is True
