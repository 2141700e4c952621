"""The running process's services, built once by the composition root (server.app).

Edges reach them through `services(request)`; nothing else holds global state.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from server.admission import Admission
from server.auth import Authenticator
from server.cache import PageCache
from server.canary import Canary
from server.drain import Drainer
from server.engine import Engine
from server.feed import Feeds
from server.hub import Hub
from server.metrics import Metrics
from server.newsroom import Newsroom
from server.pages.assets import AssetTable
from server.pages.render import PageRenderer
from server.ratelimit import RateLimiter
from server.relay import Relay
from server.settings import Settings
from server.streams.keepalive import Keepalive
from server.webhooks.service import Webhooks


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: Engine
    hub: Hub
    relay: Relay
    feeds: Feeds
    newsroom: Newsroom
    auth: Authenticator
    metrics: Metrics
    pages: PageRenderer
    drainer: Drainer
    writes: RateLimiter
    canary: Canary
    admission: Admission
    keepalive: Keepalive
    webhooks: Webhooks
    page_cache: PageCache
    assets: AssetTable


def services(connection: HTTPConnection) -> Services:
    """The services of the app serving *connection* (set by the lifespan)."""
    found: Services = connection.state.services
    return found
