"""Who is calling: the bearer token of a request, as a Principal (401 without a valid one, 403 if not admin)."""

from __future__ import annotations

from starlette.requests import Request

from server.api.errors import ApiError
from server.auth import Principal, Unauthorized
from server.logs import set_subject
from server.services import services


def principal(request: Request) -> Principal:
    """Who the bearer token is; 401 without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = 'Bearer realm="livepush"'
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", field="Authorization",
                       headers={"WWW-Authenticate": challenge})
    try:
        found = services(request).auth.authenticate(token.strip())
    except Unauthorized as exc:
        raise ApiError(401, "invalid_token", str(exc), field="Authorization",
                       headers={"WWW-Authenticate": challenge + ', error="invalid_token"'}) from None
    set_subject(found.subject)
    return found


def admin(request: Request) -> Principal:
    """The admin token's principal; 403 for a scoped token."""
    found = principal(request)
    if not found.admin:
        raise ApiError(403, "forbidden", "only the admin token may do this", field="Authorization")
    return found
