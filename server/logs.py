"""Structured logs: one JSON object per line, for livepush's loggers and uvicorn's.

Each line has time, level, logger and message, plus the request id of the HTTP request it
happened in (from a valid `X-Request-ID`, else generated, and echoed in the response) and, once
the request is authenticated, its `subject` (a scoped token's `sub`, or `admin`). Every accepted
write leaves one `livepush.api` line naming method, path and status: who changed what. Messages
are JSON-escaped, so a CR/LF inside anything logged cannot forge a line. livepush never logs
tokens or post bodies, and both formats redact credential-looking query parameters and bearer
tokens from whatever else is logged (uvicorn's access log writes URLs with their query strings).
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
audit = logging.getLogger("livepush.api")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_VALID_ID_BYTES = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# livepush reads tokens only from Authorization, but a client may still put one in a URL, and the
# access log (LIVEPUSH_ACCESS_LOG=1) writes URLs with their query strings.
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:access_token|token|jwt|auth|authorization|api_?key|secret|password)=)[^&;\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """*text* with credential-looking query values and bearer tokens replaced by `[redacted]`."""
    if "=" in text or "earer" in text:
        text = _BEARER.sub(r"\1[redacted]", _SECRET_PARAM.sub(r"\1[redacted]", text))
    return text


def valid_request_id(value: bytes) -> bool:
    """Whether a client's X-Request-ID is echoed as is (else a new id is made): what RequestIds accepts."""
    return _VALID_ID_BYTES.fullmatch(value) is not None


@dataclass(slots=True)
class _Request:
    """What one HTTP request's log lines carry besides its id, filled in while it is handled.

    A mutable holder in the context rather than a context variable set by the handler: a value
    set deeper down would not be seen by the middleware's own line after the handler returns.
    """

    subject: str | None = None


_request: ContextVar[_Request | None] = ContextVar("log_request", default=None)


def set_subject(subject: str) -> None:
    """Name who sent the current request in its log lines: the token's subject, never the token."""
    current = _request.get()
    if current is not None:
        current.subject = subject


def _subject() -> str | None:
    current = _request.get()
    return current.subject if current is not None else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": moment.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        subject = _subject()
        if subject is not None:
            line["subject"] = subject
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """`LIVEPUSH_LOG_FORMAT=text`: one plain line per record, credentials redacted as in JSON."""

    def format(self, record: logging.LogRecord) -> str:
        subject = _subject()
        return redact(super().format(record) + (f" (subject {subject!r})" if subject is not None else ""))


def log_config(level: str, structured: bool = True) -> dict[str, Any]:
    """A logging.config dict for uvicorn's `log_config`: livepush and uvicorn loggers, one format."""
    formatter = {"()": JsonFormatter} if structured else {
        "()": TextFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
               for name in ("livepush", "uvicorn", "uvicorn.error", "uvicorn.access")}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"default": formatter},
            "handlers": {"default": handler}, "loggers": loggers}


class RequestIds:
    """ASGI middleware: a request id per HTTP request, in the logs' context and the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _VALID_ID.match(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        current = _Request()
        context = _request.set(current)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            # One line per accepted write. Refused ones are counted in livepush_http_errors_total instead,
            # so a tool retrying in a loop cannot flood the log.
            if current.subject is not None and scope["method"] not in _READS and 200 <= status < 400:
                path = scope.get("raw_path") or scope["path"].encode()  # raw: still percent-encoded, one line
                audit.info("%s %s %d", scope["method"], path.decode("latin-1"), status)
        finally:
            _request.reset(context)
            request_id.reset(token)
