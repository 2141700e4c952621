"""What the webhook API accepts and answers (and so what /openapi.json says about it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from server.engine.outbox import ALL, Attempt, Endpoint
from server.model import SLUG_PATTERN, format_time
from server.webhooks.guard import MAX_URL, Guard, Refused

EVENT_TYPES = ("post.created", "post.updated", "post.deleted", "blog.updated")
EventType = Literal["post.created", "post.updated", "post.deleted", "blog.updated", "*"]
BlogRef = Annotated[str, StringConstraints(pattern=rf"^({SLUG_PATTERN[1:-1]}|\*)$")]
MAX_BLOGS = 100
_FORM = Guard(allow_private=True)  # the URL's form only; addresses are checked by the service


def _url(value: str) -> str:
    try:
        return _FORM.parse(value).url
    except Refused as exc:
        raise ValueError(str(exc)) from None


def _alone(values: list[str]) -> list[str]:
    if ALL in values and len(values) > 1:
        raise ValueError('"*" means all; send it alone')
    return list(dict.fromkeys(values))


def _single_line(value: str) -> str:
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


class WebhookCreate(BaseModel):
    """What `POST /api/webhooks` accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL), AfterValidator(_url)] = Field(
        description="http(s) URL; must resolve to public addresses unless LIVEPUSH_WEBHOOK_ALLOW_PRIVATE=1")
    blogs: Annotated[list[BlogRef], Field(min_length=1, max_length=MAX_BLOGS), AfterValidator(_alone)] = Field(
        description='blog ids, or ["*"] for every blog (also those created later)')
    events: Annotated[list[EventType], Field(min_length=1, max_length=5), AfterValidator(_alone)] = Field(
        description='event types, or ["*"] for all')
    description: Annotated[str, StringConstraints(max_length=300), AfterValidator(_single_line)] = ""


def _time(moment: float | None) -> str | None:
    return None if moment is None else format_time(datetime.fromtimestamp(moment, UTC))


class WebhookEndpoint(BaseModel):
    """An endpoint as the API shows it (never with its secret)."""

    id: str
    url: str
    blogs: list[str]
    events: list[str]
    description: str
    created_at: str
    enabled: bool
    disabled_reason: str | None = Field(description="why deliveries stopped; null while enabled")
    disabled_at: str | None
    failing_since: str | None = Field(description="since when every attempt has failed; null when working")

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookEndpoint:
        return cls(id=endpoint.id, url=endpoint.url, blogs=list(endpoint.blogs), events=list(endpoint.events),
                   description=endpoint.description, created_at=_time(endpoint.created_at) or "",
                   enabled=endpoint.enabled, disabled_reason=endpoint.disabled_reason or None,
                   disabled_at=_time(endpoint.disabled_at), failing_since=_time(endpoint.failing_since))


class WebhookCreated(WebhookEndpoint):
    """The answer to `POST /api/webhooks`: the endpoint and its signing secret, shown this once."""

    secret: str = Field(description="whsec_<base64>: verify each delivery's webhook-signature with it")


class WebhookList(BaseModel):
    webhooks: list[WebhookEndpoint]


class WebhookDeleted(BaseModel):
    id: str
    deleted: bool


class Delivery(BaseModel):
    """One attempt to deliver one event."""

    webhook_id: str
    blog: str
    seq: int
    event: str
    attempt: int = Field(description="1 for the first attempt of this event, then 2, 3, ...")
    status: int | None = Field(description="the receiver's HTTP status; null when no answer came")
    error: str = Field(description="why the attempt failed; empty on a 2xx")
    at: str
    duration_ms: float

    @classmethod
    def of(cls, attempt: Attempt) -> Delivery:
        return cls(webhook_id=attempt.webhook_id, blog=attempt.blog, seq=attempt.seq, event=attempt.event,
                   attempt=attempt.attempt, status=attempt.status, error=attempt.error,
                   at=_time(attempt.at) or "", duration_ms=attempt.duration_ms)


class DeliveryList(BaseModel):
    deliveries: list[Delivery] = Field(description="the newest attempts first")
