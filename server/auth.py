"""Who may write: the static admin token and scoped publisher tokens (JWT, HS256).

A scoped token names the blogs it may write (`blogs` claim; `["*"]` for all) and always
expires. Verification pins the algorithm, requires `exp`, `iat` and `sub`, and checks the
audience, so a token minted for another service or with `alg: none` is refused. Claims are
read strictly: a claim given twice is refused (JSON parsers disagree on which one wins), the
times are whole seconds (not `"1e300"` as text, nor `1e300`), a token lives at most
MAX_LIFETIME_SECONDS, and `sub` may not be `admin`, the admin token's subject, whose
idempotency results, rate-limit bucket and log identity are its own.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from server.parsing import DuplicateKey, ascii_int, no_duplicate_keys

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
MAX_LIFETIME_SECONDS = 366 * 86400  # a year: JWTs cannot be revoked, so keep them far shorter
ADMIN_SUBJECT = "admin"
MAX_SUBJECT = 200


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated publisher: a subject and the blogs it may write."""

    subject: str
    blogs: frozenset[str]
    admin: bool = False

    def may_write(self, blog_id: str) -> bool:
        return self.admin or "*" in self.blogs or blog_id in self.blogs


class Unauthorized(Exception):
    """No valid credentials; the message says why, without echoing the token."""


class _StrictJWT(jwt.PyJWT):
    """PyJWT reading the payload strictly (`_decode_payload` is PyJWT's documented hook for this)."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = json.loads(decoded["payload"], object_pairs_hook=no_duplicate_keys)
        except DuplicateKey as exc:
            raise jwt.DecodeError(f"invalid payload: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise jwt.DecodeError("invalid payload") from exc
        if not isinstance(payload, dict):
            raise jwt.DecodeError("invalid payload: not a JSON object")
        for claim in ("exp", "iat", "nbf"):  # PyJWT reads int("123") and int(1e300) as times
            if claim in payload and type(payload[claim]) is not int:
                raise jwt.DecodeError(f"invalid payload: {claim} must be a whole number of seconds")
        return payload


_decoder = _StrictJWT()


def _claims_are_sane(claims: dict[str, Any]) -> str | None:
    """Why these verified claims are still refused, or None."""
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        return "token lives too long"
    subject = claims["sub"]
    if not 0 < len(subject) <= MAX_SUBJECT or not subject.isprintable():
        return "invalid subject"
    if subject.strip().casefold() == ADMIN_SUBJECT:
        return "the subject admin is reserved"
    return None


class Authenticator:
    """Turns a bearer token into a Principal."""

    def __init__(self, admin_token: str, jwt_secret: str | None, audience: str = "livepush") -> None:
        self._admin_token = admin_token.encode()
        self._jwt_secret = jwt_secret
        self._audience = audience

    def authenticate(self, token: str) -> Principal:
        if hmac.compare_digest(token.encode(), self._admin_token):
            return Principal(ADMIN_SUBJECT, frozenset({"*"}), admin=True)
        if self._jwt_secret is None or token.count(".") != 2:
            raise Unauthorized("invalid token")
        try:
            claims = _decoder.decode(
                token, self._jwt_secret, algorithms=[ALGORITHM], audience=self._audience,
                options={"require": ["exp", "iat", "sub", "aud"]}, leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("invalid token") from exc
        refusal = _claims_are_sane(claims)
        if refusal is not None:
            raise Unauthorized(refusal)
        blogs = claims.get("blogs")
        if not isinstance(blogs, list) or not all(isinstance(b, str) for b in blogs) or not blogs:
            raise Unauthorized("token names no blogs")
        return Principal(str(claims["sub"]), frozenset(blogs))


def mint_token(secret: str, blogs: Sequence[str], ttl_seconds: int, subject: str | None = None,
               audience: str = "livepush", now: float | None = None) -> str:
    """A publisher token for *blogs* (or `["*"]`) valid for *ttl_seconds*; ValueError for what verification refuses."""
    if not 0 < ttl_seconds <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"a token lives at most {MAX_LIFETIME_SECONDS // 86400} days")
    if subject is not None and subject.strip().casefold() == ADMIN_SUBJECT:
        raise ValueError("the subject admin is reserved for the admin token")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject or f"publisher-{uuid.uuid4().hex[:8]}",
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "blogs": list(blogs),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def parse_ttl(text: str) -> int:
    """`90`, `90s`, `15m`, `1h`, `7d` to seconds; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    digits, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    number = ascii_int(digits, max_digits=9)
    if not number:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 7d)")
    return number * units[unit]
