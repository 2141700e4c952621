"""livepush: a real-time push server for live blogs.

Layout (dependencies point inward):

    api/, streams/, pages/    the edges: HTTP API, WebSocket and SSE streams, server-rendered pages
    newsroom.py, feed.py      services: the write side, and attaching readers to blogs
    relay.py, hub.py          fan-out: engine events in order, then to this process's readers
    engine/                   the Engine protocol and its implementations (memory, redis)
    model.py, sanitize.py,    the data model, the HTML allowlist, the one encoder
    wire.py
    app.py, cli.py            the composition root and the command line
"""
