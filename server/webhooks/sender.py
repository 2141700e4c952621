"""One delivery attempt: check the address, connect to exactly that address, POST, read a capped answer.

The URL's host is resolved and checked by the guard at every attempt, then the request goes to
the checked address itself, with the URL's name in the `Host` header and as the TLS server name
(SNI, also used to verify the certificate), so nothing resolves the name a second time. Redirects
are never followed (a 3xx is a failed attempt), proxies from the environment are ignored (they
would connect elsewhere), at most `ANSWER_CAP` bytes of an answer are read, and the whole
attempt (resolution included) has one deadline.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from server.webhooks.guard import Guard, Refused, Target

ANSWER_CAP = 4096
USER_AGENT = "livepush-webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: the status (None without an answer) and, unless 2xx, why it failed."""

    status: int | None
    error: str
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """POSTs for one endpoint (one client each: pooled connections are keyed by address, not by name)."""

    def __init__(self, guard: Guard, timeout: float, tls: ssl.SSLContext | None = None, connections: int = 16) -> None:
        self._guard = guard
        self._timeout = timeout
        # One TLS context per process, shared: building one loads the CA bundle (tens of ms).
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout,
                                         verify=tls or httpx.create_ssl_context(),
                                         limits=httpx.Limits(max_connections=connections,
                                                             max_keepalive_connections=connections))

    async def post(self, target: Target, headers: Mapping[str, str], body: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                status, location = await self._attempt(target, headers, body)
        except Refused as exc:
            return _failed(started, f"refused: {exc}")
        except TimeoutError:
            return _failed(started, f"timed out after {self._timeout:g}s")
        except httpx.HTTPError as exc:
            return _failed(started, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= status < 300:
            error = ""
        elif 300 <= status < 400:
            error = f"answered {status}; redirects are not followed (Location: {location[:200]})"
        else:
            error = f"answered {status}"
        return Outcome(status, error, _since(started))

    async def _attempt(self, target: Target, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        address = await self._guard.address(target)
        host = f"[{address}]" if ":" in address else address
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
        request = self._client.build_request(
            "POST", f"{target.scheme}://{host}:{target.port}{target.target}", content=body,
            headers={**headers, "Host": target.host_header, "Content-Type": "application/json",
                     "User-Agent": USER_AGENT}, extensions=extensions)
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > ANSWER_CAP:
                    break  # the rest is not ours to read; closing drops the connection
        finally:
            await response.aclose()
        return response.status_code, response.headers.get("location", "")

    async def close(self) -> None:
        await self._client.aclose()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _failed(started: float, error: str) -> Outcome:
    return Outcome(None, error, _since(started))
