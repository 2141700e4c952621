"""Absolute URLs come from the configured public base URL, never from a request's Host or X-Forwarded-*.

One forged request must not poison the copy every later reader gets from the page cache, and
Starlette's slash redirect (which builds Location from Host) must not become an open redirect.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.conftest import LiveServer, ServerFactory

PUBLIC = "https://live.news.example"
FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "gopher",
          "Forwarded": "host=evil.example;proto=https"}


async def test_a_forged_host_never_reaches_a_page_or_a_later_reader(start_server: ServerFactory) -> None:
    """Canonical link and JSON-LD URLs use LIVEPUSH_PUBLIC_URL, for the forged request and every later one."""
    server = await start_server(public_url=PUBLIC)
    await server.create_blog("b1", title="Blog")
    assert (await server.publish("b1", headline="One")).status_code == 201
    forged = await server.http.get("/blogs/b1", headers=FORGED)
    assert forged.status_code == 200
    later = await server.http.get("/blogs/b1")
    for response in (forged, later):
        assert "evil.example" not in response.text
        assert f'<link rel="canonical" href="{PUBLIC}/blogs/b1">' in response.text
        assert f'"url":"{PUBLIC}/blogs/b1"' in response.text
        assert re.search(r'"url":"https://live\.news\.example/blogs/b1#post-[a-z0-9-]+"', response.text)
    assert later.content == forged.content


async def test_the_slash_redirect_goes_to_the_public_url(start_server: ServerFactory) -> None:
    """`/newsroom/` with a forged Host redirects to the public base URL, not to the forged host."""
    server = await start_server(public_url=PUBLIC)
    for path, target in (("/newsroom/", f"{PUBLIC}/newsroom"),
                         ("/blogs/b1/?order=oldest", f"{PUBLIC}/blogs/b1?order=oldest")):
        response = await server.http.get(path, headers=FORGED)
        assert response.status_code == 307, path
        assert response.headers["location"] == target
    # A path that reads as a scheme-relative URL stays on the public origin (raw: httpx would resolve it).
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET //evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    head = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.startswith("HTTP/1.1 307")
    assert f"location: {PUBLIC}/evil.example" in head.lower().replace(PUBLIC.lower(), PUBLIC)


async def test_the_default_public_url_is_what_serve_prints(server: LiveServer, blog: dict[str, Any]) -> None:
    """Unset, the base is http://localhost:<PORT> (what `livepush serve` prints), whatever the Host says."""
    page = await server.http.get("/blogs/b1", headers=FORGED)
    assert f'<link rel="canonical" href="http://localhost:{server.settings.port}/blogs/b1">' in page.text
    assert "evil.example" not in page.text
