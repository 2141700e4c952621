"""Blogs, posts and events: the data model, its limits and its validation.

Input models (`BlogCreate`, `BlogUpdate`, `PostCreate`, `PostUpdate`) are what a newsroom
may send: unknown fields are refused, plain text may not hold control characters, and a
post's HTML body is sanitized here, so nothing unsanitized ever reaches an engine.
Output models (`Blog`, `Post`, and the event and message shapes) are what the API and
the streams return; `/openapi.json` is generated from all of them.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from server.sanitize import sanitize_html

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
MAX_TITLE = 300
MAX_DESCRIPTION = 2000
MAX_AUTHORS = 50
MAX_AUTHOR = 100
MAX_SOURCE = 100
MAX_HEADLINE = 300
MAX_BYLINE = 300
MAX_CORRECTION = 500
MAX_BODY_BYTES = 64 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_EXCEPT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SLUG = re.compile(SLUG_PATTERN)


def utc_now() -> datetime:
    """Now, in UTC, truncated to milliseconds (the precision every engine stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a trailing Z; milliseconds only when there are some."""
    m = moment.astimezone(UTC)
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return text + (f".{m.microsecond // 1000:03d}Z" if m.microsecond else "Z")


def _to_utc(moment: datetime) -> datetime:
    try:
        moment = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("must be a date between 1900 and 2999") from exc
    if not 1900 <= moment.year <= 2999:
        raise ValueError("must be a date between 1900 and 2999")
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return unicodedata.normalize("NFC", value)


def _multi_line(value: str) -> str:
    if _CONTROL_EXCEPT_NEWLINE.search(value):
        raise ValueError("must not contain control characters")
    return unicodedata.normalize("NFC", value)


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone name such as America/New_York") from exc
    if value not in _zone_names():
        raise ValueError("must be an IANA time zone name such as America/New_York")
    return value


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def _body(value: str) -> str:
    clean = sanitize_html(value)
    if len(clean.encode()) > MAX_BODY_BYTES:
        raise ValueError(f"must be at most {MAX_BODY_BYTES} bytes after sanitizing")
    return clean


def _text_time(value: object) -> object:
    # RFC 3339 text only: pydantic would otherwise read 0 or 1690000000 as a Unix time.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string such as 2023-07-26T10:34:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_time), AfterValidator(_to_utc),
                      PlainSerializer(format_time, return_type=str)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
                  AfterValidator(_single_line)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION),
                        AfterValidator(_multi_line)]
Author = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_AUTHOR),
                   AfterValidator(_single_line)]
Authors = Annotated[list[Author], Field(max_length=MAX_AUTHORS)]
Source = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SOURCE), AfterValidator(_single_line)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Headline = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_HEADLINE),
                     AfterValidator(_single_line)]
Byline = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_BYLINE), AfterValidator(_single_line)]
Correction = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_CORRECTION),
                       AfterValidator(_multi_line)]
Body = Annotated[str, StringConstraints(max_length=4 * MAX_BODY_BYTES), AfterValidator(_body)]
BlogStatus = Literal["live", "ended"]


def is_slug(value: str) -> bool:
    """True when *value* can be a blog or post id."""
    return _SLUG.fullmatch(value) is not None


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False, frozen=True)

    def changes(self) -> dict[str, Any]:
        """The fields the client actually sent, with their validated values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class BlogCreate(_Input):
    """What `POST /api/blogs` accepts."""

    id: Slug
    title: Title
    description: Description = ""
    authors: Authors = []
    source: Source = ""
    timezone: TimeZone = "America/New_York"
    status: BlogStatus = "live"


class BlogUpdate(_Input):
    """What `PATCH /api/blogs/{blog}` accepts: any subset of the editable fields."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    title: Title = ""
    description: Description = ""
    authors: Authors = []
    source: Source = ""
    timezone: TimeZone = "America/New_York"
    status: BlogStatus = "live"

    @model_validator(mode="after")
    def _not_empty(self) -> BlogUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of: title, description, authors, source, timezone, status")
        return self


class PostCreate(_Input):
    """What `POST /api/blogs/{blog}/posts` accepts."""

    headline: Headline
    byline: Byline = ""
    body: Body = ""
    published_at: Timestamp | None = None
    pinned: bool = Field(default=False, strict=True)
    key_event: bool = Field(default=False, strict=True)
    correction: Correction = ""


class PostUpdate(_Input):
    """What `PATCH /api/blogs/{blog}/posts/{post}` accepts: any subset of the editable fields."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    headline: Headline = ""
    byline: Byline = ""
    body: Body = ""
    published_at: Timestamp = datetime(1970, 1, 1, tzinfo=UTC)
    pinned: bool = Field(default=False, strict=True)
    key_event: bool = Field(default=False, strict=True)
    correction: Correction = ""

    @model_validator(mode="after")
    def _not_empty(self) -> PostUpdate:
        if not self.model_fields_set:
            raise ValueError(
                "send at least one of: headline, byline, body, published_at, pinned, key_event, correction")
        return self


class Blog(BaseModel):
    """A live blog as stored and returned."""

    model_config = ConfigDict(frozen=True)

    id: Slug
    title: str
    description: str = ""
    authors: list[str] = []
    source: str = ""
    timezone: str = "America/New_York"
    status: BlogStatus = "live"
    created_at: Timestamp
    updated_at: Timestamp
    post_count: int = 0
    seq: int = 0
    epoch: str = ""


class Post(BaseModel):
    """A post as stored and returned."""

    model_config = ConfigDict(frozen=True)

    id: Slug
    headline: str
    byline: str = ""
    body: str = ""
    published_at: Timestamp
    updated_at: Timestamp
    pinned: bool = False
    key_event: bool = False
    correction: str = ""
    version: int = 1


# Shapes of responses and messages. They document the wire format in /openapi.json;
# the hot paths build the same JSON directly (see server.wire).


class BlogList(BaseModel):
    blogs: list[Blog]
    next: str | None = Field(description="cursor for the next page (pass it as `cursor`); null on the last page")


class PostPage(BaseModel):
    posts: list[Post]
    next: str | None = Field(description="cursor for the next (older) page; null on the last page")


class PostResult(BaseModel):
    post: Post
    seq: int


class DeleteResult(BaseModel):
    seq: int


class _EventBase(BaseModel):
    seq: int
    post_count: int
    updated_at: Timestamp


class PostCreatedEvent(_EventBase):
    type: Literal["post.created"]
    blog: str
    post: Post


class PostUpdatedEvent(_EventBase):
    type: Literal["post.updated"]
    blog: str
    post: Post


class PostDeletedEvent(_EventBase):
    type: Literal["post.deleted"]
    blog: str
    post_id: str


class BlogUpdatedEvent(_EventBase):
    type: Literal["blog.updated"]
    blog: Blog = Field(description="the blog after the change (in this event, `blog` is the object, not the id)")


EventMessage = Annotated[
    PostCreatedEvent | PostUpdatedEvent | PostDeletedEvent | BlogUpdatedEvent, Field(discriminator="type")
]


class EventList(BaseModel):
    events: list[EventMessage]
    seq: int = Field(description="the seq of the last event listed (since, when none are)")
    epoch: str
    has_more: bool = Field(description="more events follow this page")
    next: int | None = Field(description="the since of the next page while has_more, else null")


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem detail (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    code: str = Field(description="machine-readable reason, e.g. invalid_field, stale_version")
    field: str | None = Field(default=None, description="the first offending field, when one is to blame")
    errors: list[FieldError] = []


class Session(BaseModel):
    """Who a token is: what `GET /api/session` answers."""

    subject: str
    admin: bool
    blogs: list[str] = Field(description='the blogs this token may write; ["*"] for all')


class Health(BaseModel):
    status: str
    engine: str
    process: int | None = Field(default=None, description="the answering process's pid (healthz only)")
