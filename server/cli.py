"""`livepush serve | token`: the command line.

`loadtest` simulates readers against any livepush server (server.loadtest).
`serve` validates the settings first (a bad variable stops it with a message naming it), prints
where to look and the admin token (only one generated for this run: stdout is the platform's
log), then runs uvicorn with the settings this traffic wants:
uvloop and httptools with read limits (server.protocols.http), no permessage-deflate (every reader
gets the same bytes), small incoming WebSocket messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
from collections.abc import Sequence

import uvicorn

from server.auth import mint_token, parse_ttl
from server.demo import DEMO_BLOG_ID
from server.logs import log_config
from server.protocols.direct import DirectWebSocketProtocol
from server.protocols.http import LimitedHttpProtocol
from server.settings import Settings, SettingsError, default_public_url

WS_MAX_MESSAGE = 64 * 1024
GRACEFUL_SECONDS = 5  # for in-flight requests once the readers are drained (uvicorn's default waits forever)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livepush", description="Real-time push server for live blogs.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (settings from the environment)")
    serve.add_argument("--host", help="listen address (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (needs REDIS_URL when > 1)")

    token = commands.add_parser("token", help="mint a scoped publisher token (needs LIVEPUSH_JWT_SECRET)")
    token.add_argument("--blog", action="append", required=True, help="blog id the token may write (repeat; * for all)")
    token.add_argument("--ttl", default="1h", help="lifetime, e.g. 15m, 1h, 7d (default 1h)")
    token.add_argument("--subject", help="who the token is for (shown in logs and scopes idempotency keys)")

    commands.add_parser("loadtest", help="simulate readers against a livepush server (see docs/LOADTEST.md)",
                        add_help=False)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadtest"]:
        from server.loadtest import main as loadtest

        return loadtest(argv[1:])
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"livepush: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token(settings, args.blog, args.ttl, args.subject)
    return _serve(settings, args.host, args.port, args.workers)


def _token(settings: Settings, blogs: list[str], ttl: str, subject: str | None) -> int:
    if settings.jwt_secret is None:
        print("livepush: set LIVEPUSH_JWT_SECRET (32+ characters) to mint scoped tokens", file=sys.stderr)
        return 2
    try:
        seconds = parse_ttl(ttl)
    except ValueError as exc:
        print(f"livepush: --ttl: {exc}", file=sys.stderr)
        return 2
    try:
        print(mint_token(settings.jwt_secret, blogs, seconds, subject, settings.jwt_audience))
    except ValueError as exc:
        print(f"livepush: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> int:
    host = host or settings.host
    port = settings.port if port is None else port
    if workers > 1 and not settings.redis_url:
        print("livepush: --workers > 1 needs REDIS_URL (the in-process engine is one process)", file=sys.stderr)
        return 2
    from server.app import engine_problem

    problem = asyncio.run(engine_problem(settings))
    if problem:
        print(f"livepush: {problem}", file=sys.stderr)
        return 2
    # Workers re-read the environment: hand them the same admin token this process prints.
    os.environ["LIVEPUSH_ADMIN_TOKEN"] = settings.admin_token
    raise_open_files_limit()
    base = settings.public_url or default_public_url(host, port)
    # Workers build their settings from the environment: every absolute URL they write uses this base.
    os.environ["LIVEPUSH_PUBLIC_URL"] = base
    engine = "redis" if settings.redis_url else "in-process (memory)"
    print(f"livepush on {base}  (engine: {engine}, workers: {workers})", flush=True)
    if settings.demo:
        print(f"  demo blog     {base}/blogs/{DEMO_BLOG_ID}", flush=True)
    print(f"  newsroom      {base}/newsroom\n  API           {base}/openapi.json", flush=True)
    # stdout goes to the platform's logs (Procfile): a token the operator chose is never written there.
    if settings.admin_token_generated:
        print(f"  admin token   {settings.admin_token}  (generated for this run; set LIVEPUSH_ADMIN_TOKEN to "
              "choose one)", flush=True)
    else:
        print("  admin token   from LIVEPUSH_ADMIN_TOKEN (not shown)", flush=True)
    uvicorn.run(
        "server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        loop="auto", http=LimitedHttpProtocol, ws=DirectWebSocketProtocol, ws_per_message_deflate=False,
        ws_max_size=WS_MAX_MESSAGE, log_level=settings.log_level, server_header=False,
        # X-Forwarded-For/-Proto are believed only from the proxies named: never by default (not even loopback).
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or None,
        access_log=settings.access_log, log_config=log_config(settings.log_level, settings.log_json),
        backlog=16384,  # a reconnect storm of 10k readers overflows the default 2048
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    return 0


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (each reader is a socket); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


if __name__ == "__main__":
    raise SystemExit(main())
