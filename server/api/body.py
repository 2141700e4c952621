"""Reading a request body as strict JSON, within a size limit and a deadline, without trusting the client."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from server import wire
from server.api.errors import ApiError, from_validation
from server.parsing import DuplicateKey, ascii_int, no_duplicate_keys

M = TypeVar("M", bound=BaseModel)
VALIDATE_IN_THREAD_BYTES = 4096  # below this, sanitizing takes well under a millisecond


def _is_json(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        return False
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    return charset in ("", "utf-8", "utf8")


async def read_body(request: Request, limit: int, time_limit: float) -> bytes:
    """The raw body; 415 unless JSON, 413 past *limit* bytes (counted as they arrive), 408 unless it has all
    arrived within *time_limit* seconds (a slow-body client must not hold a connection and a task for ever)."""
    if not _is_json(request.headers.get("content-type", "")):
        raise ApiError(415, "not_json", "send the body as application/json (UTF-8)", field="Content-Type")
    declared = ascii_int(request.headers.get("content-length", ""), max_digits=18)
    if declared is not None and declared > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(time_limit):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
                chunks.append(chunk)
    except ClientDisconnect:
        # Gone, or its body was malformed (server.protocols.http answers 400 itself): this answer goes nowhere.
        raise ApiError(400, "body_incomplete", "the body ended before it was complete; nothing was changed",
                       field="body") from None
    except TimeoutError:
        # The rest of the body may still be on its way: close rather than parse it as the next request.
        raise ApiError(408, "body_timeout", f"the body did not arrive within {time_limit:g}s; nothing was changed",
                       field="body", headers={"Connection": "close"}) from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    """Strict JSON object: 400 when malformed (also NaN, numbers out of range, bad UTF-8, lone surrogates,
    deep nesting, and a key given twice: parsers disagree on which one wins, so neither does)."""
    if not raw.strip():
        raise ApiError(400, "malformed_json", "the body is empty; send a JSON object")
    try:
        value = wire.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    try:
        json.loads(raw, object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise ApiError(400, "duplicate_key", f"the key {exc.key!r} appears twice in one object",
                       field=exc.key) from None
    except (ValueError, RecursionError) as exc:  # orjson accepted it; the stdlib parser is only stricter on depth
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_field", "the body must be a JSON object", field="body")
    return value


async def read_model(request: Request, model: type[M], limit: int, time_limit: float) -> tuple[M, dict[str, Any]]:
    """Read, parse and validate the body as *model*; also return the parsed JSON.

    Validating a large body sanitizes its HTML (tens of milliseconds at worst, see server.markup):
    parsing and validating it run in a worker thread, so the event loop keeps serving meanwhile.
    """
    raw = await read_body(request, limit, time_limit)
    if len(raw) > VALIDATE_IN_THREAD_BYTES:
        return await asyncio.to_thread(_parse_and_validate, raw, model)
    return _parse_and_validate(raw, model)


def _parse_and_validate(raw: bytes, model: type[M]) -> tuple[M, dict[str, Any]]:
    data = parse_json(raw)
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        raise from_validation(exc) from None


def fingerprint(data: dict[str, Any]) -> str:
    """A digest of the request's meaning (key order and whitespace do not matter)."""
    import orjson

    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
