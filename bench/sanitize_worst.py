"""The slowest post body the sanitizer still accepts, and what the bounds refuse.

    .venv/bin/python -m bench.sanitize_worst [--repeat 3]

Each shape is the largest of its kind that a post may carry: at most 256 KiB of input (the
model's limit before sanitizing) and within the bounds of `server.sanitize.check_markup`
(depth, tags, attributes per tag). The shapes aim at the HTML5 parser's costly paths: deep
stacks of open elements, tables that add elements of their own, formatting elements that are
reopened after every block, many distinct attributes, the adoption agency for `<a>` and `<b>`,
comments, entities and plain text. A realistic long post is the yardstick. The time printed is
the best of `--repeat` runs of `sanitize_html` (the pre-scan included), in milliseconds; the
figure to quote is the worst accepted shape. The second table shows the reports in the issue
(8 s of a blocked event loop each before the bounds) refused by the pre-scan.

With `--served`, it also starts `livepush serve` on a free port, publishes the worst accepted
shape a few times, and polls `/healthz` meanwhile: the slowest `/healthz` answer shows whether
the event loop waited for the sanitizer (it validates large bodies in a worker thread).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from bench.procs import free_port
from server.markup import MAX_ATTRIBUTES, MAX_DEPTH, MAX_REOPENED, MAX_TAGS, MarkupTooComplex, check_markup
from server.model import MAX_BODY_BYTES
from server.sanitize import sanitize_html

INPUT_LIMIT = 4 * MAX_BODY_BYTES  # characters, as server.model.Body allows before sanitizing


def fill(unit: str, tags_per_unit: int, head: str = "", tail: str = "", tags: int = MAX_TAGS - 200) -> str:
    """*unit* repeated as often as the input size and a budget of *tags* allow."""
    room = INPUT_LIMIT - len(head) - len(tail)
    times = min(room // len(unit), tags // max(1, tags_per_unit))
    return head + unit * times + tail


def carried(count: int) -> str:
    """*count* formatting elements left open across blocks: the parser recreates them in each block."""
    head = "<div>" + "".join(f'<b title="{i}">' for i in range(count)) + "</div>"
    return fill("<p>x</p>", 2, head=head, tags=MAX_REOPENED // count - count - 10)


def nested(tag: str, depth: int = MAX_DEPTH) -> str:
    return f"<{tag}>" * depth + f"</{tag}>" * depth


def attributes(count: int = MAX_ATTRIBUTES) -> str:
    return "".join(f' data-a{i}="{i}"' for i in range(count))


def realistic() -> str:
    paragraph = ('<p>The minister <strong>said</strong> on Tuesday that <a href="https://example.com/x">talks</a> '
                 "would resume, <em>according to</em> two officials.</p>")
    figure = ('<figure><img src="/static/demo/a.svg" alt="A photo" width="800" height="450"><figcaption>Caption '
              '<span class="credit">Agency</span></figcaption></figure>')
    unit = paragraph * 4 + figure + "<ul><li>One</li><li>Two</li></ul><blockquote><p>Quote</p></blockquote>"
    return (unit * (MAX_BODY_BYTES // len(unit)))[:MAX_BODY_BYTES - 200]


SHAPES: dict[str, Callable[[], str]] = {
    "realistic 64 KiB post": realistic,
    "plain text": lambda: "x" * INPUT_LIMIT,
    "entities": lambda: fill("&amp;&lt;&#x1F600;", 0),
    "comments": lambda: fill("<!-- c -->", 0),
    "bogus comments": lambda: fill("<!x></ y><?z>", 0),
    f"<dl> {MAX_DEPTH} deep, repeated": lambda: fill(nested("dl"), 2 * MAX_DEPTH),
    f"<div> {MAX_DEPTH} deep, repeated": lambda: fill(nested("div"), 2 * MAX_DEPTH),
    f"<blockquote> {MAX_DEPTH} deep, repeated": lambda: fill(nested("blockquote"), 2 * MAX_DEPTH),
    f"<ul><li> {MAX_DEPTH // 2} deep, repeated": lambda: fill("<ul><li>" * 32 + "</li></ul>" * 32, 4 * 32),
    f"<table><td> {MAX_DEPTH // 2} deep": lambda: fill("<table><td>" * 32 + "</td></table>" * 32, 4 * 32),
    f"<svg><g> {MAX_DEPTH} deep, repeated": lambda: fill("<svg>" + nested("g", MAX_DEPTH - 1) + "</svg>",
                                                         2 * MAX_DEPTH),
    "1 formatting element carried across blocks": lambda: carried(1),
    "8 formatting elements carried across blocks": lambda: carried(8),
    f"{MAX_DEPTH - 2} formatting elements carried across blocks": lambda: carried(MAX_DEPTH - 2),
    f"{MAX_ATTRIBUTES} distinct attributes per tag": lambda: fill(f"<span{attributes()}>x</span>", 2),
    f"{MAX_ATTRIBUTES} distinct attributes, unclosed <b>": lambda: fill(
        f"<b{attributes()}>x" * (MAX_DEPTH - 1) + "</b>" * (MAX_DEPTH - 1), 2 * (MAX_DEPTH - 1)),
    "<a> inside <a> (adoption agency)": lambda: fill("<a>x" * 32 + "</a>" * 32, 64),
    "misnested <b><i></b></i>": lambda: fill("<b><i>x</b></i>", 4),
    "unclosed <p> and <li>": lambda: fill("<p>x<li>y", 2),
    "<select> with options": lambda: fill("<select>" + "<option>x" * 60 + "</option></select>", 63),
    "empty <b></b>, most tags": lambda: fill("<b></b>", 2),
}

REFUSED = {
    '<dl> x 65500 (issue: 201 after 8 s)': "<dl>" * 65500,
    '<ul> x 65500 (issue: 422 after 8.6 s)': "<ul>" * 65500,
    '<div> x 52400 (issue: 5.9 s)': "<div>" * 52400,
    '<blockquote> x 21845 (issue: 1.1 s)': "<blockquote>" * 21845,
    '<b a0 .. a19999> (160 ms without bounds)': "<b" + "".join(f" a{i}" for i in range(20000)) + ">",
    '<b a=i> x 30000 unclosed (132 s without bounds)': "".join(f"<b a={i}>" for i in range(30000))[:INPUT_LIMIT],
    '62 <b> carried across 5000 blocks (1.5 s without bounds)': "<div>" + "<b>" * 62 + "</div>" + "<p>x</p>" * 5000,
}


def best_of(repeat: int, body: str) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        sanitize_html(body)
        times.append(time.perf_counter() - started)
    return min(times) * 1000


async def served(body: str, publishes: int = 5) -> None:
    """Publish *body* to a real `livepush serve` while polling /healthz; print both latencies."""
    port, token = free_port(), "bench-admin-token-0123456789"
    env = {**os.environ, "LIVEPUSH_ADMIN_TOKEN": token, "LIVEPUSH_DEMO": "0", "LIVEPUSH_LOG_LEVEL": "warning",
           "LIVEPUSH_WRITE_RATE": "0"}
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            await client.post("/api/blogs", json={"id": "bench", "title": "Bench"})
            quiet = [await _healthz(client) for _ in range(50)]
            publish_ms: list[float] = []
            busy: list[float] = []
            for _ in range(publishes):
                started = time.perf_counter()
                post = client.post("/api/blogs/bench/posts", json={"headline": "x", "body": body})
                publish = asyncio.create_task(post)
                while not publish.done():
                    busy.append(await _healthz(client))
                response = await publish
                assert response.status_code in (201, 422), response.text[:200]
                publish_ms.append((time.perf_counter() - started) * 1000)
        print(f"served: publish {max(publish_ms):.1f} ms at worst; /healthz at worst {max(quiet):.1f} ms idle, "
              f"{max(busy):.1f} ms during the publishes ({len(busy)} polls)")
    finally:
        process.terminate()
        process.wait(10)


async def _healthz(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    await client.get("/healthz")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--served", action="store_true", help="also publish the worst shape to livepush serve")
    args = parser.parse_args()
    print(f"bounds: depth {MAX_DEPTH}, {MAX_TAGS} tags, {MAX_ATTRIBUTES} attributes per tag, "
          f"input {INPUT_LIMIT // 1024} KiB\n")
    print(f"{'accepted shape':58} {'KiB':>5} {'ms':>8}")
    worst = ("", 0.0)
    for name, make in SHAPES.items():
        body = make()
        check_markup(body)  # every shape here must be accepted
        elapsed = best_of(args.repeat, body)
        worst = max(worst, (name, elapsed), key=lambda item: item[1])
        print(f"{name:58} {len(body) // 1024:5d} {elapsed:8.1f}")
    print(f"\nworst accepted: {worst[0]}: {worst[1]:.1f} ms\n")
    if args.served:
        asyncio.run(served(SHAPES[worst[0]]()))
        print()
    print(f"{'refused shape':58} {'KiB':>5} {'ms':>8}  reason")
    for name, body in REFUSED.items():
        started = time.perf_counter()
        try:
            check_markup(body)
        except MarkupTooComplex as exc:
            print(f"{name:58} {len(body) // 1024:5d} {(time.perf_counter() - started) * 1000:8.1f}  {exc}")
        else:
            raise SystemExit(f"not refused: {name}")


if __name__ == "__main__":
    main()
