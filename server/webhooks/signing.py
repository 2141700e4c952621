"""Standard Webhooks signatures: `whsec_` secrets, stable message ids, and `v1,<base64 HMAC-SHA256>`.

The signed content is `<webhook-id>.<webhook-timestamp>.<body>` with the secret's decoded bytes as
the HMAC key, as the specification and its reference verifier (the `standardwebhooks` package) say.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix the specification gives every secret)
SECRET_BYTES = 32  # the specification asks for 24 to 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(blog_id: str, epoch: str, seq: int) -> str:
    """The same id on every attempt of one event, on every node: it is derived, never stored."""
    return f"msg_{blog_id}_{epoch}_{seq}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
