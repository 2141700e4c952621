"""Security headers on every HTTP response, and a Content-Security-Policy on the HTML pages.

The pages load only their own scripts and styles (no inline script or style anywhere), talk
only to this origin (API and WebSocket), and show images from this server or over https (posts
may embed https photos). Post bodies are sanitized on write; the policy is the second wall.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'self'")
ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
PAGES = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"SAMEORIGIN"),
         (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()")]


class SecurityHeaders:
    """ASGI middleware; WebSocket connections pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += ALWAYS
                if any(name == b"content-type" and value.startswith(b"text/html") for name, value in headers):
                    headers += PAGES
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def security_headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The header lines SecurityHeaders adds to a response of *content_type* (for responses built ahead)."""
    return ALWAYS + PAGES if content_type.startswith(b"text/html") else list(ALWAYS)
