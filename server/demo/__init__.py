"""The demo blog: the seed page (CNN, July 26, 2023 - Russia-Ukraine news) as data.

`russia-ukraine-2023-07-26.json` holds the page's blog and its nine posts with their ET times
converted to UTC; `images/` holds local placeholder images so nothing loads from other hosts.
"""

from __future__ import annotations

from importlib import resources

from server import wire
from server.engine import Engine
from server.model import Blog, Post
from server.sanitize import sanitize_html

DEMO_BLOG_ID = "russia-ukraine-2023-07-26"
IMAGES = resources.files(__package__) / "images"


def demo_data() -> tuple[Blog, list[Post]]:
    """The demo blog and its posts, validated like anything else."""
    raw = wire.loads((resources.files(__package__) / f"{DEMO_BLOG_ID}.json").read_bytes())
    posts = [Post.model_validate({**post, "body": sanitize_html(post["body"])}) for post in raw["posts"]]
    blog = Blog.model_validate({**raw["blog"], "post_count": len(posts)})
    return blog, posts


async def load_demo(engine: Engine) -> bool:
    """Load the demo blog unless it exists; True when it was loaded now."""
    blog, posts = demo_data()
    return await engine.import_blog(blog, posts)
