"""The reader-facing streams: one reader's protocol over WebSocket (websocket.py) or SSE (sse.py).

Both speak the same messages (server.wire) and attach through server.feed; this package only
handles the transport: origin policy, resume parameters, pings, and closing.
"""
