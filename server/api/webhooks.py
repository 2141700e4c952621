"""The webhook endpoints of the API (admin token only); their `Operation` entries are in routes.OPERATIONS."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server import wire
from server.api.access import admin
from server.api.body import read_model
from server.api.errors import ApiError
from server.engine.outbox import Endpoint
from server.model import is_slug
from server.services import services
from server.webhooks.guard import Refused
from server.webhooks.model import Delivery, WebhookCreate, WebhookCreated, WebhookEndpoint
from server.webhooks.service import TooManyEndpoints

MAX_DELIVERIES = 100


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.dumps(data), status, headers=headers, media_type="application/json")


def _shown(endpoint: Endpoint) -> dict[str, Any]:
    return WebhookEndpoint.of(endpoint).model_dump(mode="json")


async def _endpoint(request: Request) -> Endpoint:
    endpoint_id: str = request.path_params["webhook"]
    endpoint = await services(request).webhooks.get(endpoint_id) if is_slug(endpoint_id) else None
    if endpoint is None:
        raise ApiError(404, "unknown_webhook", f"no webhook endpoint with id {endpoint_id!r}")
    return endpoint


async def create_webhook(request: Request) -> Response:
    svc = services(request)
    admin(request)
    data, _ = await read_model(request, WebhookCreate, svc.settings.max_body_bytes, svc.settings.body_timeout)
    try:
        endpoint = await svc.webhooks.create(data)
    except Refused as exc:
        raise ApiError(422, "invalid_field", f"url: {exc}", field="url") from None
    except TooManyEndpoints:
        raise ApiError(409, "too_many_webhooks", f"{svc.settings.webhook_max_endpoints} webhook endpoints exist "
                       "already (LIVEPUSH_WEBHOOK_MAX_ENDPOINTS); delete one first") from None
    created = WebhookCreated(**WebhookEndpoint.of(endpoint).model_dump(), secret=endpoint.secret)
    return _json(created.model_dump(mode="json"), 201, {"Location": f"/api/webhooks/{endpoint.id}"})


async def list_webhooks(request: Request) -> Response:
    admin(request)
    return _json({"webhooks": [_shown(endpoint) for endpoint in await services(request).webhooks.all()]})


async def get_webhook(request: Request) -> Response:
    admin(request)
    return _json(_shown(await _endpoint(request)))


async def delete_webhook(request: Request) -> Response:
    admin(request)
    endpoint = await _endpoint(request)
    if not await services(request).webhooks.delete(endpoint.id):
        raise ApiError(404, "unknown_webhook", f"no webhook endpoint with id {endpoint.id!r}")
    return _json({"id": endpoint.id, "deleted": True})


async def list_deliveries(request: Request) -> Response:
    admin(request)
    endpoint = await _endpoint(request)
    raw = request.query_params.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DELIVERIES:
        raise ApiError(422, "invalid_field", f"limit must be an integer from 1 to {MAX_DELIVERIES}", field="limit")
    attempts = await services(request).webhooks.deliveries(endpoint.id, int(raw))
    return _json({"deliveries": [Delivery.of(attempt).model_dump(mode="json") for attempt in attempts]})
