"""Structured logs: one JSON object per line, for livepush's loggers and uvicorn's.

Each line has time, level, logger and message, plus the request id of the HTTP request it
happened in (from a valid `X-Request-ID`, else generated, and echoed in the response). Messages
are JSON-escaped, so a CR/LF inside anything logged cannot forge a line. livepush never logs
tokens or post bodies, and both formats redact credential-looking query parameters and bearer
tokens from whatever else is logged (uvicorn's access log writes URLs with their query strings).
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
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
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """`LIVEPUSH_LOG_FORMAT=text`: one plain line per record, credentials redacted as in JSON."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
