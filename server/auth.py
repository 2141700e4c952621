"""Who may write: the static admin token and scoped publisher tokens (JWT, HS256).

A scoped token names the blogs it may write (`blogs` claim; `["*"]` for all) and always
expires. Verification pins the algorithm, requires `exp`, `iat` and `sub`, and checks the
audience, so a token minted for another service or with `alg: none` is refused.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from server.parsing import ascii_int

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30


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


class Authenticator:
    """Turns a bearer token into a Principal."""

    def __init__(self, admin_token: str, jwt_secret: str | None, audience: str = "livepush") -> None:
        self._admin_token = admin_token.encode()
        self._jwt_secret = jwt_secret
        self._audience = audience

    def authenticate(self, token: str) -> Principal:
        if hmac.compare_digest(token.encode(), self._admin_token):
            return Principal("admin", frozenset({"*"}), admin=True)
        if self._jwt_secret is None or token.count(".") != 2:
            raise Unauthorized("invalid token")
        try:
            claims = jwt.decode(
                token, self._jwt_secret, algorithms=[ALGORITHM], audience=self._audience,
                options={"require": ["exp", "iat", "sub", "aud"]}, leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("invalid token") from exc
        blogs = claims.get("blogs")
        if not isinstance(blogs, list) or not all(isinstance(b, str) for b in blogs) or not blogs:
            raise Unauthorized("token names no blogs")
        return Principal(str(claims["sub"]), frozenset(blogs))


def mint_token(secret: str, blogs: Sequence[str], ttl_seconds: int, subject: str | None = None,
               audience: str = "livepush", now: float | None = None) -> str:
    """A publisher token for *blogs* (or `["*"]`) valid for *ttl_seconds*."""
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
