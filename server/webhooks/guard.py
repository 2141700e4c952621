"""The SSRF guard: which webhook URLs may be called, and at which address.

A webhook URL is chosen by whoever holds the admin token, and the server then calls it from
inside the newsroom's network. So only `http`/`https` URLs without credentials are taken, and
the host must resolve to public (global unicast) addresses only: loopback, private, shared,
link-local (cloud metadata at 169.254.169.254), multicast, unspecified and reserved addresses
are refused, also when written as an IPv4-mapped or NAT64 IPv6 address. The check runs at
creation and again at every attempt, and the attempt then connects to the very address that was
checked (the caller pins it; see server.webhooks.sender), so a DNS answer that changes between
the check and the connection (rebinding) cannot redirect the request. Hosts must be DNS names
or canonical IP literals: the numeric shorthands that resolvers accept (`2130706433`, `127.1`,
`0x7f.1`) are refused before anyone resolves them.

`LIVEPUSH_WEBHOOK_ALLOW_PRIVATE=1` lifts the address rule (tests, private deployments).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

MAX_URL = 2048
Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}\.?$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(ValueError):
    """The URL or the address it resolves to may not be called; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked webhook URL, split into what an attempt needs."""

    url: str
    scheme: str
    host: str  # a DNS name, or an IP literal without brackets
    port: int
    target: str  # path and query
    host_header: str
    literal: IPAddress | None


def public(address: IPAddress) -> bool:
    """True for a global unicast address (not loopback, private, link-local, multicast, ...)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


class Guard:
    """Checks URLs and resolves them to an address that may be called."""

    def __init__(self, allow_private: bool, resolver: Resolver = system_resolver, timeout: float = 3.0) -> None:
        self.allow_private = allow_private
        self._resolve = resolver
        self._timeout = timeout

    def parse(self, url: str) -> Target:
        """Check the URL's form (and a literal address); Refused says what is wrong."""
        if len(url) > MAX_URL:
            raise Refused(f"must be at most {MAX_URL} characters")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise Refused(f"is not a valid URL ({exc})") from None
        if parsed.scheme not in ("http", "https") or not url.lower().startswith(parsed.scheme + "://"):
            raise Refused("must be an http:// or https:// URL")
        if parsed.userinfo:
            raise Refused("must not contain a user name or password")
        host = parsed.raw_host.decode("ascii", "replace").lower()
        if not host:
            raise Refused("has no host")
        literal = _literal(host)
        if literal is None and not _is_dns_name(host):
            raise Refused(f"host {host!r} is neither a DNS name nor an IP address")
        if literal is not None:
            self._check(host, [literal])
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        netloc = parsed.netloc.decode("ascii")
        return Target(str(parsed.copy_with(fragment=None)), parsed.scheme, host, port,
                      parsed.raw_path.decode("ascii"), netloc, literal)

    async def address(self, target: Target) -> str:
        """An address of *target* that may be called now (every address it resolves to is checked)."""
        if target.literal is not None:
            self._check(target.host, [target.literal])
            return str(target.literal)
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._resolve(target.host, target.port)
        except (OSError, TimeoutError) as exc:
            raise Refused(f"host {target.host!r} does not resolve ({exc or 'timed out'})") from None
        addresses = [ipaddress.ip_address(item) for item in found]
        if not addresses:
            raise Refused(f"host {target.host!r} does not resolve")
        self._check(target.host, addresses)
        return str(addresses[0])

    async def check(self, url: str) -> Target:
        """parse() and address(): what creating an endpoint checks."""
        target = self.parse(url)
        await self.address(target)
        return target

    def _check(self, host: str, addresses: list[IPAddress]) -> None:
        if self.allow_private:
            return
        for address in addresses:
            if not public(address):
                shown = host if str(address) == host else f"{host!r}, which resolves to {address}"
                raise Refused(f"{shown} is not a public address (loopback, private, link-local, multicast "
                              "and metadata addresses are refused; LIVEPUSH_WEBHOOK_ALLOW_PRIVATE=1 allows them)")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_dns_name(host: str) -> bool:
    if len(host) > 253 or _HOSTNAME.match(host) is None:
        return False
    return not host.rstrip(".").rsplit(".", 1)[-1].isdigit()  # 127.1, 2130706433: numeric shorthands
