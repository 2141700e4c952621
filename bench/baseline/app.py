"""The naive baseline: a live-blog push app written the way encode/broadcaster's README teaches.

Starlette + uvicorn + broadcaster, one `broadcast.subscribe()` per WebSocket, `send_text` per
message per reader, JSON encoded per publish. It speaks just enough of livepush's protocol for
`livepush loadtest` to drive it (create a blog, publish, a snapshot first, then events with seq),
so both servers are measured by the same tool in the same run. Not part of livepush: it lives in
bench/ with its own environment (see bench/setup_baseline.sh).

    BROADCAST_URL=memory:// uvicorn app:app --port 8001
    BROADCAST_URL=redis://127.0.0.1:6390 uvicorn app:app --port 8001
"""

import itertools
import json
import os
from datetime import datetime, timezone

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

broadcast = Broadcast(os.environ.get("BROADCAST_URL", "memory://"))
blogs = {}
counter = itertools.count(1)


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def create_blog(request):
    data = await request.json()
    blogs.setdefault(data["id"], {"id": data["id"], "title": data.get("title", ""), "seq": 0, "epoch": "baseline"})
    return JSONResponse(blogs[data["id"]], status_code=201)


async def get_blog(request):
    blog = blogs.get(request.path_params["blog"])
    return JSONResponse(blog) if blog else JSONResponse({"status": 404}, status_code=404)


async def publish(request):
    blog = blogs.setdefault(request.path_params["blog"],
                            {"id": request.path_params["blog"], "title": "", "seq": 0, "epoch": "baseline"})
    data = await request.json()
    blog["seq"] += 1
    stamp = now()
    post = {"id": f"p{next(counter)}", "headline": data.get("headline", ""), "byline": data.get("byline", ""),
            "body": data.get("body", ""), "published_at": stamp, "updated_at": stamp, "pinned": False,
            "key_event": False, "correction": "", "version": 1}
    event = {"type": "post.created", "blog": blog["id"], "seq": blog["seq"], "post_count": blog["seq"],
             "updated_at": stamp, "post": post}
    await broadcast.publish(channel=blog["id"], message=json.dumps(event))
    return JSONResponse({"post": post, "seq": blog["seq"]}, status_code=201)


async def live(websocket):
    blog_id = websocket.path_params["blog"]
    await websocket.accept()
    async with broadcast.subscribe(channel=blog_id) as subscriber:
        blog = blogs.get(blog_id, {"id": blog_id, "seq": 0, "epoch": "baseline"})
        await websocket.send_text(json.dumps({"type": "snapshot", "blog": blog, "posts": [], "has_more": False,
                                              "seq": blog["seq"], "epoch": "baseline"}))
        async for event in subscriber:
            await websocket.send_text(event.message)


app = Starlette(
    routes=[
        Route("/api/blogs", create_blog, methods=["POST"]),
        Route("/api/blogs/{blog}", get_blog),
        Route("/api/blogs/{blog}/posts", publish, methods=["POST"]),
        WebSocketRoute("/ws/blogs/{blog}", live),
    ],
    on_startup=[broadcast.connect],
    on_shutdown=[broadcast.disconnect],
)
