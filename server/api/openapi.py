"""`/openapi.json`, generated from the operation table and the pydantic models (never written by hand)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from server.api.routes import Operation
from server.model import Problem
from server.problems import PROBLEM_JSON

_REASONS = {
    400: "Malformed JSON or header", 401: "No or bad token", 403: "Token not allowed for this blog",
    404: "Unknown blog, post or webhook", 409: "Conflict (id exists, blog ended, too many webhooks)",
    410: "Events no longer kept",
    412: "Stale If-Match", 413: "Body too large", 415: "Not JSON", 422: "Invalid field", 429: "Too many requests",
    503: "Engine unavailable",
}


def openapi_document(operations: Iterable[Operation], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for *operations*."""
    operations = list(operations)
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in operations:
        wanted.append((op.response, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    refs, schema = models_json_schema(sorted(set(wanted), key=lambda item: (item[0].__name__, item[1])),
                                      ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "livepush", "version": version,
                 "description": "Real-time push server for live blogs. Streams: `GET /ws/blogs/{blog}` "
                                "(WebSocket) and `GET /sse/blogs/{blog}` (server-sent events); see docs/PROTOCOL.md."},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "LIVEPUSH_ADMIN_TOKEN or a scoped JWT"}},
        },
    }


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    kind: Literal["serialization"] = "serialization"
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.handler.__name__,
        "tags": [op.tag],
        "responses": {str(op.status): {"description": "OK", "content": {
            "application/json": {"schema": refs[(op.response, kind)]}}}},
    }
    parameters: list[dict[str, Any]] = []
    for name in ("blog", "post", "webhook"):
        if "{" + name + "}" in op.path:
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}})
    for param in op.params:
        parameters.append({"name": param.name, "in": param.where, "required": param.required,
                           "description": param.description, "schema": dict(param.schema)})
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(op.body, "validation")]}}}
    if op.auth:
        doc["security"] = [{"bearer": []}]
    problem = {PROBLEM_JSON: {"schema": refs[(Problem, kind)]}}
    for status in op.errors:
        doc["responses"][str(status)] = {"description": _REASONS.get(status, "Error"), "content": problem}
    return doc
